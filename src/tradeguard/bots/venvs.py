"""Each bot's own virtualenv: the Python installation, the SDK, the bot's requirements, and
nothing else of tradeguard. Inside it `import tradeguard.sdk` works and `import tradeguard.vault`
is ModuleNotFoundError, because its `tradeguard` package holds the SDK alone."""

from __future__ import annotations

import compileall
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from tradeguard.core.errors import TradeguardError

__all__ = ["VenvError", "create_venv", "install_sdk", "site_packages"]

_SDK_SOURCE = Path(__file__).parent / "sdk"


class VenvError(TradeguardError):
    """A bot's virtualenv cannot be created or filled."""


def site_packages(venv: Path) -> Path:
    return Path(sysconfig.get_path("purelib", "venv", {"base": venv, "platbase": venv}))


def create_venv(path: Path) -> Path:
    """A fresh virtualenv at `path` (absolute) without pip and without the system's
    site-packages; the bot's requirements are installed into it from outside."""
    path = path.absolute()
    if path.exists():
        raise VenvError(f"{path} already exists: remove it first to recreate the bot's virtualenv")
    done = subprocess.run(
        [sys.executable, "-I", "-m", "venv", "--without-pip", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise VenvError(f"cannot create the virtualenv {path}: {last}")
    return path


def install_sdk(venv: Path) -> Path:
    """Copy the SDK into `venv` as `tradeguard.sdk` (replacing any older copy); returns the
    package's directory."""
    site = site_packages(venv)
    if not site.is_dir():
        raise VenvError(f"{venv} is not a virtualenv made by create_venv (no {site})")
    package = site / "tradeguard"
    shutil.rmtree(package, ignore_errors=True)
    target = package / "sdk"
    target.mkdir(parents=True)
    (package / "__init__.py").write_text('"""The tradeguard SDK alone; see tradeguard.sdk."""\n')
    for source in sorted(_SDK_SOURCE.glob("*.py")):
        shutil.copyfile(source, target / source.name)
    # Bytecode now, since the bot cannot write it: its virtualenv is read-only in the sandbox.
    compileall.compile_dir(package, quiet=1)
    return target
