"""Importing what the command line names: ``module:attribute`` targets and task modules."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Any

from taskq.broker import AsyncBroker
from taskq.cli.converters import directory as existing_directory
from taskq.exceptions import TaskiqError

logger = logging.getLogger("taskq.cli")


class TargetError(TaskiqError):
    """A target or module given on the command line cannot be imported or is the wrong thing."""

    __template__ = "cannot import the target"


def add_working_directory_to_path(directory: str | None = None) -> None:
    """Let ``directory``'s modules (default: the current directory's) be imported first.

    As ``python -m`` does for the current directory.
    """
    path = os.path.abspath(directory) if directory is not None else os.getcwd()
    if path not in sys.path:
        sys.path.insert(0, path)


def add_app_dir_argument(parser: argparse.ArgumentParser, default: Any = None) -> None:
    """Add ``--app-dir DIR``/``-d DIR`` to a plain argparse parser (no environment twin).

    Spelled, checked and worded as in ``taskq worker`` and ``taskq status``; give the value to
    `add_working_directory_to_path`. A command with sub-commands adds it to its own parser and,
    with ``default=argparse.SUPPRESS``, to each sub-command's, so that it is taken before and
    after the sub-command's name and one given before is not reset by the sub-command.
    """
    parser.add_argument(
        "--app-dir",
        "-d",
        type=existing_directory,
        default=default,
        help="directory to import the broker from (default: the current directory)",
        metavar="DIR",
    )


def import_module(name: str) -> None:
    """Import module ``name``; raise `TargetError` with a one-line reason when it fails."""
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        logger.debug("Importing %r failed", name, exc_info=True)
        if exc.name is not None and (name == exc.name or name.startswith(f"{exc.name}.")):
            raise TargetError(
                f"no module named {exc.name!r}: check the spelling, and run from the directory "
                "that contains it (or add that directory to PYTHONPATH)"
            ) from exc
        raise TargetError(f"importing {name!r} failed: {_one_line(exc)}") from exc
    except Exception as exc:
        logger.debug("Importing %r failed", name, exc_info=True)
        raise TargetError(f"importing {name!r} failed: {_one_line(exc)}") from exc


def import_object(target: str) -> object:
    """Return the object ``target`` names, written ``package.module:attribute``.

    The attribute may be dotted (``app:container.broker``). Raises `TargetError`.
    """
    module_name, colon, attribute = target.partition(":")
    if not colon or not module_name or not attribute:
        raise TargetError(
            f"{target!r} is not a target: write module:attribute, e.g. myapp.tasks:broker"
        )
    import_module(module_name)
    found: object = sys.modules[module_name]
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise TargetError(
                f"{target!r}: module {module_name!r} has no attribute {attribute!r}"
            ) from None
    return found


def import_broker(target: str) -> AsyncBroker:
    """Return the `AsyncBroker` that ``target`` (``module:attribute``) names."""
    found = import_object(target)
    if not isinstance(found, AsyncBroker):
        raise TargetError(
            foreign_object_hint(target, found, "AsyncBroker", "broker")
            or f"{target!r} is an object of type {type(found).__name__}, not an AsyncBroker"
        )
    return found


def foreign_object_hint(target: str, found: object, base_name: str, kind: str) -> str | None:
    """Explain a ``kind`` made with another library (one whose class ``base_name`` it derives).

    Returns None when ``found`` is no such object. The usual case is code still importing
    from taskiq: the message says which import to change.
    """
    kind_type = type(found)
    bases = [c for c in kind_type.__mro__ if c.__name__ == base_name]
    if not bases:
        return None
    library = bases[0].__module__.partition(".")[0]
    package = kind_type.__module__.partition(".")[0]
    what = f"{kind_type.__module__}.{kind_type.__qualname__}"
    if package == library == "taskiq":
        advice = "change `from taskiq import ...` to `from taskq import ...`"
    else:
        advice = f"use a taskq {kind} instead (`from taskq import ...` or a taskq_* package)"
    return f"{target!r} is a {library} {kind} ({what}); taskq needs its own: {advice}"


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
