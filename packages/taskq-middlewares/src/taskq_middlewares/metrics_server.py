"""The HTTP endpoint of the metrics: the sum over one directory of metric files, on one address.

The processes that may serve a directory (a worker group's keeper, see `metrics_keeper`; a
worker process on its own) queue for its endpoint lock, a file lock in the directory, one per
address and port. The holder listens and serves; when it stops, or dies (even by SIGKILL: the
system frees the lock with the process), the next one in the queue gets the lock and listens
at once. Only the holder tries to listen: an address held by a process outside the queue
(another ``taskq worker`` on the same port) is reported and tried again every `RETRY_BIND_S`
seconds, never shared. With `MetricsTLS` the endpoint is HTTPS and answers only scrapers
holding a client certificate signed by the given authority.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from taskq_middlewares.metric_files import files_locked, tidy

logger = logging.getLogger("taskq.prometheus")

#: Seconds between two attempts to listen while a process outside this group holds the address.
RETRY_BIND_S = 5.0
#: Seconds between the first attempts of a new lock holder: a worker killed by a signal frees
#: its lock and its socket one after the other, so the address may be taken for an instant.
TAKEOVER_RETRY_S = 0.05
#: How long a new lock holder tries at `TAKEOVER_RETRY_S` before it reports the address taken.
TAKEOVER_WINDOW_S = 1.0
#: Without file locks (Windows) every waiting process tries the address every `RETRY_BIND_S`,
#: and workers serve the endpoint themselves (no keeper).
HAS_FILE_LOCKS = sys.platform != "win32"


@dataclass(frozen=True)
class MetricsTLS:
    """Serve the metrics over HTTPS to scrapers that present a client certificate.

    Attributes:
        certfile: The endpoint's certificate (PEM).
        keyfile: Its private key (PEM).
        client_cafile: The authority (PEM) that signs the scrapers' certificates (Prometheus's
            ``tls_config: {cert_file, key_file}``); a request without one is refused.
    """

    certfile: str
    keyfile: str
    client_cafile: str


class MetricsServer:
    """Serves the metrics of ``directory`` on ``addr:port`` while it holds the group's turn."""

    def __init__(
        self, directory: Path, addr: str, port: int, tls: MetricsTLS | None = None
    ) -> None:
        """Prepare to serve; nothing happens before `start`."""
        self.directory = directory
        self.addr = addr
        self.port = port
        self.tls = tls
        self._stopping = threading.Event()
        self._guard = threading.Lock()  # `stop` and the waiting thread's listen exclude each other
        self._turn: IO[bytes] | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def serving(self) -> bool:
        """Whether this process is the one serving the endpoint now."""
        return self._server is not None

    def start(self, turn: IO[bytes] | None = None) -> None:
        """Listen now if this process gets the turn and the address, else wait in a thread.

        ``turn``: the group's endpoint lock (`take_turn`), when the caller holds it already.
        """
        self._turn = turn or take_turn(self.directory, self.addr, self.port, wait=False)
        if self._turn is not None and self._try_listen():
            return
        if self._turn is None:
            logger.info(
                "Metrics: another process of this metrics directory serves %s:%d; this one "
                "takes over if it stops",
                self.addr,
                self.port,
            )
        self._thread = threading.Thread(target=self._wait_for_turn, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving (or waiting to), then give the turn to the next process of the group."""
        with self._guard:
            self._stopping.set()
            server, self._server = self._server, None
            if server is not None:
                server.shutdown()
                server.server_close()
            turn, self._turn = self._turn, None
        if turn is not None:  # after the socket is closed: the next holder can listen at once
            turn.close()

    def _wait_for_turn(self) -> None:
        # A thread waiting for the lock cannot be interrupted: `stop` does not join it; if it
        # gets the lock after `stop`, it gives it up at once.
        turn = self._turn or take_turn(self.directory, self.addr, self.port, wait=True)
        with self._guard:
            if self._stopping.is_set():
                if turn is not None:
                    turn.close()
                return
            self._turn = turn
        self._listen_when_free()

    def _listen_when_free(self) -> None:
        """Listen as soon as the address frees: at once after a worker of the group, else slowly."""
        if HAS_FILE_LOCKS:  # the turn came: only the previous holder's socket may be closing
            if self._retry_listen(TAKEOVER_RETRY_S, TAKEOVER_WINDOW_S):
                return
            logger.warning(
                "Metrics: %s:%d is held by a process outside this worker group (another "
                "taskq worker on the same port?); this group's metrics are not served until "
                "it frees: give each taskq worker a server_port of its own",
                self.addr,
                self.port,
            )
        self._retry_listen(RETRY_BIND_S, None)

    def _retry_listen(self, interval_s: float, for_s: float | None) -> bool:
        """Try to listen every ``interval_s`` for ``for_s`` seconds (None: for ever).

        True once listening or stopped; False when ``for_s`` passed.
        """
        deadline = None if for_s is None else time.monotonic() + for_s
        while deadline is None or time.monotonic() < deadline:
            if self._try_listen():
                return True
            if self._stopping.wait(interval_s):
                return True
        return False

    def _try_listen(self) -> bool:
        from prometheus_client import start_http_server

        tls: dict[str, Any] = {}
        if self.tls is not None:
            tls = {
                "certfile": self.tls.certfile,
                "keyfile": self.tls.keyfile,
                "client_cafile": self.tls.client_cafile,
                "client_auth_required": True,
            }
        with self._guard:
            if self._stopping.is_set():
                return False
            try:
                self._server, _ = start_http_server(
                    self.port, addr=self.addr, registry=group_registry(self.directory), **tls
                )
            except OSError:
                return False
        scheme = "http" if self.tls is None else "https"
        logger.info(
            "Metrics served on %s://%s:%d/ (pid %d)", scheme, self.addr, self.port, os.getpid()
        )
        return True


def take_turn(directory: Path, addr: str, port: int, *, wait: bool) -> IO[bytes] | None:
    """Lock the group's endpoint file for ``addr:port``; the open file holds the lock.

    None when another process holds it and not ``wait``. On Windows (no `flock`) every
    process gets a turn at once, and the address alone decides who serves.
    """
    name = re.sub(r"[^\w.-]", "_", f"endpoint-{addr}-{port}.lock")  # no colons (IPv6) on Windows
    lock = open(directory / name, "a+b")  # noqa: SIM115 - held open while holding the turn
    if not HAS_FILE_LOCKS:
        return lock
    import fcntl

    try:
        fcntl.flock(lock, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return None
    except BaseException:
        lock.close()
        raise
    return lock


def group_registry(directory: Path) -> Any:
    """A registry that sums the metric files in ``directory``."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    registry.register(GroupCollector(directory))
    return registry


class GroupCollector:
    """Sums the metric files of a group, first tidying those of dead processes (`tidy`)."""

    def __init__(self, directory: Path) -> None:
        """Collect from ``directory``."""
        from prometheus_client.multiprocess import MultiProcessCollector

        self.directory = directory
        self._files = MultiProcessCollector(None, path=str(directory))

    def collect(self) -> Any:
        """Return the summed metrics of the live and the finished processes of the group."""
        tidy(self.directory)
        with files_locked(self.directory):  # no merge removes a file between glob and read
            return list(self._files.collect())
