"""Steering tasks across workers: rate and concurrency limits, unique tasks.

Each works through a shared record: the contracts are `taskq.abc.limiter.TaskLimiter` and
`taskq.abc.unique_store.UniqueKeyStore`; the in-process implementations live here, the Redis
ones (for many hosts) in ``taskq_redis``.
"""
