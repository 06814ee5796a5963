"""Environment variables ``taskq worker`` sets for its processes (and the plugins they run)."""

#: Names a worker's group: the pid of the manager that started it. What the processes of
#: one ``taskq worker`` share (Prometheus metric files, for instance) is keyed by it; a
#: process started otherwise has no group.
WORKER_GROUP_ENV = "TASKQ_WORKER_GROUP"
