"""`ModelMethods`: the pydantic model methods of taskq's data classes, for code written for taskiq.

taskiq's `TaskiqResult`, `TaskiqMessage`, `ScheduledTask` and `TaskProgress` are pydantic
models, and result backends and schedule sources written for taskiq call ``model_dump``,
``model_dump_json``, ``model_validate``, ``model_validate_json`` and ``model_copy`` on them.
taskq keeps them plain data classes (they are on the hot path) and gives them these methods,
which convert through a pydantic model of the same fields (`taskq._model_schemas`), built on
first use: importing taskq imports no pydantic.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from typing_extensions import Self

if TYPE_CHECKING:
    from pydantic import BaseModel

_Instance = TypeVar("_Instance")


class ModelMethods:
    """Mixin giving a data class the pydantic methods of the taskiq model it stands for.

    The results are taskiq's: the same keys, values and JSON (see the "Migrating from taskiq"
    page for the differences left).
    """

    __slots__ = ()

    def model_dump(self, **options: Any) -> dict[str, Any]:
        """Return the fields as a dict; ``options`` are pydantic's (``mode="json"``, ...)."""
        dumped: dict[str, Any] = self._as_model().model_dump(**options)
        return dumped

    def model_dump_json(self, **options: Any) -> str:
        """Return the fields as JSON text; ``options`` are pydantic's (``indent``, ...)."""
        return self._as_model().model_dump_json(**options)

    @classmethod
    def model_validate(
        cls,
        obj: Any,
        *,
        strict: bool | None = None,
        from_attributes: bool | None = None,
        context: Any | None = None,
    ) -> Self:
        """Build an instance from ``obj`` (a dict, or an instance, returned as it is).

        Raises:
            pydantic.ValidationError: ``obj`` does not fit, as taskiq's model would say.
        """
        if isinstance(obj, cls):
            return obj
        model = _model_of(cls).model_validate(
            obj, strict=strict, from_attributes=from_attributes, context=context
        )
        return _build(cls, model, obj)

    @classmethod
    def model_validate_json(
        cls, json_data: str | bytes | bytearray, *, strict: bool | None = None, context: Any = None
    ) -> Self:
        """Build an instance from JSON text (as `model_dump_json` writes it).

        Raises:
            pydantic.ValidationError: the JSON is invalid or does not fit.
        """
        model = _model_of(cls).model_validate_json(json_data, strict=strict, context=context)
        return _build(cls, model, json_data)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """Return a copy (deep with ``deep=True``) with the fields in ``update`` replaced.

        As in pydantic, ``update`` is not validated.

        Raises:
            TypeError: ``update`` names a field the class does not have.
        """
        names = [field.name for field in dataclasses.fields(self)]  # type: ignore[arg-type]
        unknown = set(update or ()) - set(names)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {sorted(unknown)[0]!r}")
        values = {name: getattr(self, name) for name in names}
        if deep:
            import copy  # not at import time: few callers copy deep

            values = copy.deepcopy(values)
        values.update(update or {})
        copied = object.__new__(type(self))
        for name, value in values.items():
            object.__setattr__(copied, name, value)
        return copied

    def _as_model(self) -> BaseModel:
        model = _model_of(type(self))
        return model.model_construct(**{name: getattr(self, name) for name in model.model_fields})


def _model_of(cls: type[Any]) -> type[BaseModel]:
    from taskq._model_schemas import model_for

    return model_for(cls)


def _build(cls: type[_Instance], model: BaseModel, raw: Any) -> _Instance:
    """Make the data class from the validated model; its own checks become validation errors."""
    from pydantic import ValidationError
    from pydantic_core import InitErrorDetails

    try:
        return cls(**dict(model))
    except ValueError as error:
        line: InitErrorDetails = {
            "type": "value_error",
            "loc": (),
            "input": raw,
            "ctx": {"error": error},
        }
        raise ValidationError.from_exception_data(cls.__name__, [line]) from None
