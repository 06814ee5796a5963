"""Importing an optional dependency with an error that says which extra to install."""

from __future__ import annotations

import importlib
from typing import Any


def require(module: str, extra: str) -> Any:
    """Import ``module`` or raise ImportError naming the ``taskq-core[extra]`` to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{module} is not installed: pip install 'taskq-core[{extra}]'") from exc
