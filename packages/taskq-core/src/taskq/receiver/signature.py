"""A task's signature, prepared once: binding a message's arguments and casting them to types."""

from __future__ import annotations

import inspect
import sys
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from taskq.casting import cast_value
from taskq.exceptions import TaskArgumentsError

if TYPE_CHECKING:
    from taskiq_dependencies import DependencyGraph

#: The module defining taskiq-dependencies' ``Dependency``. It is imported only for a task that
#: has dependencies: its package imports FastAPI when that is installed, which costs a command
#: that merely builds a broker (``taskq status``) most of its start-up time.
_DEPENDENCY_MODULE = "taskiq_dependencies.dependency"

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.VAR_POSITIONAL)


class TaskSignature:
    """How to call one task function with a message's ``args`` and ``kwargs``.

    Parameters filled by dependency injection (``= TaskiqDepends()``) are left out of the
    binding and resolved through ``graph``; every other parameter is bound by name, so an
    unannotated parameter never shifts the casting of the ones after it.
    """

    def __init__(self, func: Callable[..., Any], cast_types: bool) -> None:
        """Inspect ``func`` once."""
        self.func = func
        self.is_async = _is_async(func)
        signature = inspect.signature(func)
        hints = _type_hints(func)
        dependency_names = {
            name for name, p in signature.parameters.items() if _is_dependency(p, hints.get(name))
        }
        parameters = [p for p in signature.parameters.values() if p.name not in dependency_names]
        self.call_signature = signature.replace(parameters=parameters)
        self.has_parameters = bool(parameters)
        self.annotations: dict[str, Any] = {}
        for parameter in parameters if cast_types else ():
            annotation = hints.get(parameter.name, parameter.annotation)
            if annotation is not inspect.Parameter.empty:
                self.annotations[parameter.name] = annotation
        self.pass_by_position = any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in parameters)
        # the common case, plain parameters all given by position, skips Signature.bind
        plain = all(p.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD for p in parameters)
        self._plain_names = [p.name for p in parameters] if plain else None
        self.dependency_names = frozenset(dependency_names)
        self.graph: DependencyGraph | None = None
        if dependency_names:
            from taskiq_dependencies import DependencyGraph

            self.graph = DependencyGraph(func)

    def bind(
        self, task_name: str, args: list[Any], kwargs: dict[str, Any]
    ) -> tuple[list[Any], dict[str, Any]]:
        """Return the positional and keyword arguments to call the function with.

        Raises `TaskArgumentsError` when they do not fit the signature or a value cannot be
        cast to its parameter's annotation.
        """
        if not args and not kwargs and not self.has_parameters:
            return [], {}
        if self._plain_names is not None and not kwargs and len(args) == len(self._plain_names):
            return [], self._cast_all(task_name, dict(zip(self._plain_names, args, strict=True)))
        try:
            bound = self.call_signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TaskArgumentsError(task_name=task_name, reason=str(exc)) from None
        return self._split(self._cast_all(task_name, bound.arguments))

    def _cast_all(self, task_name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        for name, annotation in self.annotations.items():
            if name in arguments:
                arguments[name] = self._cast(task_name, name, annotation, arguments[name])
        return arguments

    def _cast(self, task_name: str, name: str, annotation: Any, value: Any) -> Any:
        kind = self.call_signature.parameters[name].kind
        try:
            if kind == inspect.Parameter.VAR_POSITIONAL:
                return tuple(cast_value(annotation, item) for item in value)
            if kind == inspect.Parameter.VAR_KEYWORD:
                return {key: cast_value(annotation, item) for key, item in value.items()}
            return cast_value(annotation, value)
        except ValueError as exc:
            reason = f"parameter {name!r} does not accept {value!r}: {_reason(exc)}"
            raise TaskArgumentsError(task_name=task_name, reason=reason) from None

    def _split(self, arguments: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        positional: list[Any] = []
        keywords: dict[str, Any] = {}
        for name, value in arguments.items():
            kind = self.call_signature.parameters[name].kind
            if kind == inspect.Parameter.VAR_POSITIONAL:
                positional.extend(value)
            elif kind == inspect.Parameter.VAR_KEYWORD:
                keywords.update(value)
            elif kind in _POSITIONAL or (
                self.pass_by_position and kind == inspect.Parameter.POSITIONAL_OR_KEYWORD
            ):
                positional.append(value)
            else:
                keywords[name] = value
        return positional, keywords


def _type_hints(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func, include_extras=True)
    except Exception:
        return {}


def _is_dependency(parameter: inspect.Parameter, hint: Any) -> bool:
    """Whether ``parameter`` is filled by dependency injection (``= TaskiqDepends()``).

    A `Dependency` exists only once its module is imported (``TaskiqDepends`` imports it): until
    then no parameter can be one, and the check imports nothing.
    """
    module = sys.modules.get(_DEPENDENCY_MODULE)
    if module is None:
        return False
    dependency = module.Dependency
    if isinstance(parameter.default, dependency):
        return True
    metadata = getattr(hint, "__metadata__", ())
    return any(isinstance(item, dependency) for item in metadata)


def _is_async(func: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(func):
        return True
    call = getattr(func, "__call__", None)  # noqa: B004 - callable objects
    return inspect.iscoroutinefunction(call)


def _reason(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)  # pydantic's ValidationError lists its reasons
    if callable(errors):
        return "; ".join(str(error.get("msg", error)) for error in errors())
    return str(exc).strip().split("\n", 1)[0]
