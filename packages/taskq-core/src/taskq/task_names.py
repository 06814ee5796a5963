"""Default task names: ``module:function``, with the module a script run as ``__main__`` has.

A script's tasks must get the names a worker importing that script gives them. Run as
``python jobs.py`` (or ``python app/jobs.py``) its functions live in ``__main__``, while
``taskq worker jobs:broker`` imports it as ``jobs``; so ``__main__`` is replaced by the module
name the script has when imported from the current directory (``jobs``, ``app.jobs``), or by
the name given to ``python -m``.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable
from typing import Any


def default_task_name(func: Callable[..., Any]) -> str:
    """Return ``"module:function"`` for ``func``, naming ``__main__`` as a worker would.

    A lambda gets a unique name (``module:lambda_<hex>``), so that two lambdas of a module
    do not replace each other, as in taskiq.
    """
    module = func.__module__
    if module == "__main__":
        module = main_module_name()
    name = func.__name__
    if name == "<lambda>":
        name = f"lambda_{uuid.uuid4().hex}"
    return f"{module}:{name}"


def main_module_name() -> str:
    """The importable name of the ``__main__`` module (``"__main__"`` when it has none).

    ``python -m pkg.jobs`` gives ``pkg.jobs``. ``python pkg/jobs.py`` gives the script's path
    relative to the current directory, dotted, without ``.py`` (``pkg.jobs``); a script
    outside the current directory gives its file name without ``.py``. An interactive
    session or ``python -c`` keeps ``__main__``.
    """
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        return str(spec.name)
    script = sys.argv[0] if sys.argv else ""
    if not script.endswith(".py") or not os.path.isfile(script):
        return "__main__"
    relative = os.path.relpath(os.path.abspath(script))
    if relative.startswith(os.pardir + os.sep):
        relative = os.path.basename(relative)
    return ".".join(relative.removesuffix(".py").split(os.sep))
