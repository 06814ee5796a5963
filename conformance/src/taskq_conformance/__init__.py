"""taskq-conformance: the pytest suite every broker, result backend and schedule source must pass.

Run it with ``pytest --pyargs taskq_conformance --taskq-broker pkg.mod:factory`` (or
``--taskq-result-backend`` / ``--taskq-schedule-source``).
"""

__version__ = "0.1.0"
