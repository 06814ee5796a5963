"""The trust boundary: CURVE keys, the authenticator of allowed peers, the exposed-address check.

Whoever reaches a ZeroMQ broker's socket can take tasks (with their arguments) or inject tasks
that workers run. Two defences: bind only loopback (the default), or turn CURVE on, so that only
peers whose public keys are allowed get through. Binding another address without CURVE is
refused unless explicitly allowed (`check_exposed`). The side that binds is the CURVE server (the
client by default, the worker with ``bind="worker"``); it needs its own key pair and the allowed
public keys. The side that connects needs its own key pair and the server's public key.

Keys are certificate files as `zmq.auth.create_certificates` writes them (`create_keys` here
does the same): ``NAME.key`` holds the public key, ``NAME.key_secret`` both keys.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import zmq

from taskq.exceptions import SecurityError
from taskq.toolkit import is_loopback_host

logger = logging.getLogger("taskq.zmq")

#: This process's certificate: a ``.key_secret`` file (its public and secret key).
SECRET_KEY_FILE_ENV = "TASKQ_ZMQ_CURVE_SECRET_KEY_FILE"
#: The binding side's public certificate (a ``.key`` file), for the side that connects.
SERVER_KEY_FILE_ENV = "TASKQ_ZMQ_CURVE_SERVER_KEY_FILE"
#: A directory of public certificates (``*.key``) the binding side lets in.
ALLOWED_KEYS_DIR_ENV = "TASKQ_ZMQ_CURVE_ALLOWED_KEYS_DIR"

_warned: set[str] = set()


@dataclass(frozen=True)
class CurveKeys:
    """The CURVE keys of one broker (Z85-encoded, as ZeroMQ takes them).

    Attributes:
        public_key: this side's public key.
        secret_key: this side's secret key.
        server_key: the binding side's public key (None: this side only binds).
        allowed_keys: public keys the binding side accepts (empty: this side only connects).
    """

    public_key: bytes
    secret_key: bytes
    server_key: bytes | None
    allowed_keys: frozenset[bytes]

    @classmethod
    def load(
        cls,
        secret_key_file: str | os.PathLike[str] | None = None,
        server_key_file: str | os.PathLike[str] | None = None,
        allowed_keys_dir: str | os.PathLike[str] | None = None,
    ) -> CurveKeys | None:
        """Read the keys from the files given, else from the environment; None if CURVE is off.

        CURVE is on when a secret key file is given (argument or `SECRET_KEY_FILE_ENV`).

        Raises:
            SecurityError: a file is missing or is not a certificate, or server or allowed keys
                are given without a secret key file.
        """
        secret_file = secret_key_file or os.environ.get(SECRET_KEY_FILE_ENV) or None
        server_file = server_key_file or os.environ.get(SERVER_KEY_FILE_ENV) or None
        allowed_dir = allowed_keys_dir or os.environ.get(ALLOWED_KEYS_DIR_ENV) or None
        if secret_file is None:
            if server_file is not None or allowed_dir is not None:
                raise SecurityError(
                    "CURVE keys for peers are set but not this side's own: give "
                    f"curve_secret_key_file or set {SECRET_KEY_FILE_ENV}"
                )
            return None
        public, secret = _certificate(secret_file, secret=True)
        if secret is None:  # pragma: no cover - _certificate checked it
            raise SecurityError(f"{secret_file} holds no CURVE secret key")
        server = None if server_file is None else _certificate(server_file, secret=False)[0]
        allowed: set[bytes] = set()
        if allowed_dir is not None:
            directory = Path(allowed_dir)
            if not directory.is_dir():
                raise SecurityError(f"the allowed CURVE keys directory {directory} does not exist")
            allowed = {_certificate(path, secret=False)[0] for path in directory.glob("*.key")}
        return cls(public, secret, server, frozenset(allowed))

    def serve(self, socket: zmq.Socket[Any]) -> None:
        """Make ``socket`` (about to bind) a CURVE server: call before `bind`."""
        if not self.allowed_keys:
            raise SecurityError(
                "CURVE is on but no peer is allowed: give curve_allowed_keys_dir or set "
                f"{ALLOWED_KEYS_DIR_ENV} to a directory of the peers' public .key files"
            )
        socket.curve_secretkey = self.secret_key
        socket.curve_publickey = self.public_key
        socket.curve_server = True

    def join(self, socket: zmq.Socket[Any]) -> None:
        """Make ``socket`` (about to connect) a CURVE client: call before `connect`."""
        if self.server_key is None:
            raise SecurityError(
                "CURVE is on but the server's public key is unknown: give curve_server_key_file "
                f"or set {SERVER_KEY_FILE_ENV} to the binding side's .key file"
            )
        socket.curve_secretkey = self.secret_key
        socket.curve_publickey = self.public_key
        socket.curve_serverkey = self.server_key


class Gatekeeper:
    """Runs ZeroMQ's authenticator (ZAP) on a context: only allowed public keys get in.

    Args:
        context: the context whose binding sockets it guards; start it before they bind.
        keys: the allowed public keys.
    """

    def __init__(self, context: zmq.Context[Any], keys: CurveKeys) -> None:
        """Start the authenticator thread."""
        from zmq.auth.thread import ThreadAuthenticator  # only with CURVE: workers stay small

        self._allowed = keys.allowed_keys
        self._authenticator = ThreadAuthenticator(context, log=logger.getChild("auth"))
        self._authenticator.start()
        self._authenticator.configure_curve_callback("*", credentials_provider=self)

    def callback(self, domain: str, key: bytes) -> bool:
        """Whether the peer with the Z85 public key ``key`` may connect."""
        return key in self._allowed

    def stop(self) -> None:
        """Stop the authenticator thread."""
        self._authenticator.stop()


def create_keys(directory: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
    """Write a new CURVE key pair: ``NAME.key`` (public) and ``NAME.key_secret`` in ``directory``.

    Returns:
        The paths of the public and the secret certificate.
    """
    import zmq.auth

    Path(directory).mkdir(parents=True, exist_ok=True)
    public, secret = zmq.auth.create_certificates(os.fspath(directory), name)
    return Path(public), Path(secret)


def is_loopback(address: str) -> bool:
    """Whether a ZeroMQ address is reachable only from this host (loopback, ipc, inproc)."""
    parts = urlsplit(address)
    if parts.scheme in ("ipc", "inproc"):
        return True
    host = parts.netloc.rsplit(":", 1)[0].strip("[]")
    if ";" in host:  # tcp://source;destination
        host = host.split(";", 1)[1]
    return is_loopback_host(host)  # '*', an interface or a host name: possibly exposed


def check_exposed(address: str, keys: CurveKeys | None, allow_unauthenticated: bool) -> None:
    """Refuse to bind a non-loopback address without CURVE, unless explicitly allowed.

    Allowed (``allow_unauthenticated``), it logs a warning once per address instead.

    Raises:
        SecurityError: ``address`` is reachable from other hosts, CURVE is off and
            ``allow_unauthenticated`` is false.
    """
    if keys is not None or is_loopback(address):
        return
    if not allow_unauthenticated:
        raise SecurityError(
            f"refusing to bind {address} without CURVE authentication: anyone who reaches it "
            "could run tasks and read their arguments. Bind a loopback address, turn CURVE on "
            "(see the Security section of the taskq-zmq documentation), or, on a network you "
            "trust entirely, pass allow_unauthenticated=True"
        )
    if address in _warned:
        return
    _warned.add(address)
    logger.warning(
        "The ZeroMQ broker binds %s without CURVE authentication (allow_unauthenticated): "
        "anyone who reaches it can run tasks and read their arguments.",
        address,
    )


def _certificate(path: str | os.PathLike[str], secret: bool) -> tuple[bytes, bytes | None]:
    import zmq.auth

    what = "secret" if secret else "public"
    try:
        public, secret_key = zmq.auth.load_certificate(os.fspath(path))
    except (OSError, ValueError) as exc:
        raise SecurityError(f"cannot read the CURVE {what} key file {path}: {exc}") from exc
    if public is None or (secret and secret_key is None):
        raise SecurityError(
            f"{path} holds no CURVE {what} key: give the .key_secret file create_keys wrote"
            if secret
            else f"{path} holds no CURVE public key: give a .key file create_keys wrote"
        )
    return public, secret_key
