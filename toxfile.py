"""Inline tox plugin: make every pyenv-installed CPython visible to tox.

tox 4 imports ``toxfile.py`` from the directory of ``tox.ini`` automatically. pyenv's shims
only expose the *global* interpreter (``python3.10`` is a shim that fails unless 3.10 is the
active version), so tox could not find the other versions on its own. At import time this
module prepends ``<pyenv root>/versions/<X.Y.Z>/bin`` for every installed CPython to ``PATH``,
newest first, so that ``base_python = python3.10`` resolves to the real binary.

The pyenv root is ``pyenv root`` when ``pyenv`` is on PATH, else ``$PYENV_ROOT``, else
``~/.pyenv``. Without pyenv (e.g. on GitHub Actions) it adds nothing to ``PATH``. It never makes
tox skip anything: an interpreter that cannot be found still fails its environment (it also
forbids uv, which creates the envs through tox-uv, to download one).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

# Plain CPython releases only ("3.12.1"); pypy, conda, dev builds and pyenv-virtualenv
# environments are left alone.
_RELEASE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def _pyenv_root() -> Path:
    pyenv = shutil.which("pyenv")
    if pyenv is not None:
        try:
            result = subprocess.run(
                [pyenv, "root"], capture_output=True, text=True, check=True, timeout=30
            )
        except (OSError, subprocess.SubprocessError):
            pass
        else:
            if result.stdout.strip():
                return Path(result.stdout.strip())
    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    return Path.home() / ".pyenv"


def _pyenv_bin_dirs(root: Path) -> list[str]:
    found: list[tuple[tuple[int, ...], str]] = []
    versions = root / "versions"
    if versions.is_dir():
        for entry in versions.iterdir():
            match = _RELEASE.match(entry.name)
            if match and (entry / "bin").is_dir():
                found.append((tuple(map(int, match.groups())), str(entry / "bin")))
    # Newest first: if 3.12.1 and 3.12.8 are both installed, python3.12 is 3.12.8.
    return [path for _, path in sorted(found, reverse=True)]


def _expose_pyenv_interpreters() -> None:
    bin_dirs = _pyenv_bin_dirs(_pyenv_root())
    if bin_dirs:
        rest = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d and d not in bin_dirs]
        os.environ["PATH"] = os.pathsep.join([*bin_dirs, *rest])


_expose_pyenv_interpreters()
# tox-uv creates the envs with uv, which would download a missing interpreter instead of
# failing its env; a missing Python must fail.
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")
