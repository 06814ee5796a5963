"""`EnvArgumentParser`: an argument parser whose every option also reads an environment variable.

A subcommand names its prefix (``TASKQ_WORKER_``, ``TASKQ_SCHEDULER_``, ...); the variable of
``--max-prefetch`` is then ``TASKQ_WORKER_MAX_PREFETCH``. The command line wins over the
variable, which wins over the default.
"""

from __future__ import annotations

import argparse
import enum
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any


class EnvArgumentParser(argparse.ArgumentParser):
    """An argument parser whose options (`add_option`) each have an environment twin.

    Args:
        prog: The command, e.g. ``taskq worker``.
        description: What the command does.
        env_prefix: The start of every variable, e.g. ``TASKQ_WORKER_``.
        defaults: Each option's default by destination name, shown in the help (the values
            themselves come from the caller's options dataclass).
    """

    def __init__(
        self, *, prog: str, description: str, env_prefix: str, defaults: Mapping[str, Any]
    ) -> None:
        super().__init__(
            prog=prog,
            description=description,
            epilog=(
                f"Each option can also be set by the environment variable in brackets "
                f"({env_prefix}<OPTION>); the command line wins."
            ),
            argument_default=argparse.SUPPRESS,
        )
        self.env_prefix = env_prefix
        self.defaults = defaults
        self._twins: list[tuple[str, str, Callable[[str], Any]]] = []
        self._secret_variables: set[str] = set()

    def env_variable(self, flag: str) -> str:
        """Return a flag's environment twin: ``--max-prefetch`` → ``<prefix>MAX_PREFETCH``."""
        return self.env_prefix + flag.removeprefix("--").replace("-", "_").upper()

    def add_option(
        self,
        *flags: str,
        help: str,
        convert: Callable[[str], Any] | None = None,
        env_convert: Callable[[str], Any] | None = None,
        default_text: str | None = None,
        secret: bool = False,
        **kwargs: Any,
    ) -> None:
        """Add an option; ``env_convert`` (default ``convert``) reads its environment twin.

        The help shows the option's default, or ``default_text`` where words say it better
        (``the current directory`` rather than ``none``). The error of a ``secret`` option's
        variable (a token, a password) does not repeat its value.
        """
        dest = flags[0].removeprefix("--").replace("-", "_")
        variable = self.env_variable(flags[0])
        shown = default_text or show_default(self.defaults[dest])
        text = f"{help} (default: {shown}) [{variable}]".replace("%", "%%")
        if convert is not None:
            kwargs["type"] = convert
        self.add_argument(*flags, dest=dest, help=text, **kwargs)
        reader = env_convert or convert
        if reader is None:
            raise TypeError(f"option {flags[0]} needs a converter for {variable}")
        self._twins.append((dest, variable, reader))
        if secret:
            self._secret_variables.add(variable)

    def parse_options(
        self, argv: Sequence[str], environ: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """Parse ``argv``, fill the gaps from ``environ`` (default: os.environ), return the values.

        List values come back as tuples, for the frozen option dataclasses.
        """
        namespace = self.parse_args(argv)
        self.fill_from_environment(namespace, os.environ if environ is None else environ)
        return {
            name: tuple(value) if isinstance(value, list) else value
            for name, value in vars(namespace).items()
        }

    def fill_from_environment(
        self, namespace: argparse.Namespace, environ: Mapping[str, str]
    ) -> None:
        """Set each option not given on the command line from its environment variable."""
        for dest, variable, convert in self._twins:
            raw = environ.get(variable)
            if raw is None or hasattr(namespace, dest):
                continue
            try:
                setattr(namespace, dest, convert(raw))
            except argparse.ArgumentTypeError as exc:
                shown = "(hidden)" if variable in self._secret_variables else repr(raw)
                self.error(f"environment variable {variable}={shown}: {exc}")


def show_default(default: object) -> str:
    """Return how the help shows a default value."""
    if default is None:
        return "none"
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, tuple):
        return ",".join(default)
    if isinstance(default, enum.Enum):
        return str(default.value)
    return str(default)
