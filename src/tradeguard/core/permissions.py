"""Owner and mode checks for the files and directories that hold secrets.

One wording everywhere (settings, store, doctor): what is wrong, and the exact command that fixes
it. Checks read `st_mode`/`st_uid`, not `os.access`, because root can read anything and the point
is who else could.
"""

from __future__ import annotations

import os
import pwd
import shlex
import stat
from pathlib import Path
from typing import Literal

__all__ = [
    "create_private_dir",
    "create_private_file",
    "exposure_problem",
    "open_private_file",
    "write_fully",
]

Kind = Literal["file", "directory"]


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def exposure_problem(path: Path, st: os.stat_result, kind: Kind) -> str | None:
    """Why `path` is not private to the current user, with the fix; None when it is."""
    quoted = shlex.quote(str(path))
    if st.st_uid != os.geteuid():
        return (
            f"{path} is owned by {_user_name(st.st_uid)}, not by {_user_name(os.geteuid())} who "
            f"runs tradeguard; run: chown {_user_name(os.geteuid())} {quoted}"
        )
    if stat.S_IMODE(st.st_mode) & 0o077:
        want = "700" if kind == "directory" else "600"
        return (
            f"{path} has mode {stat.S_IMODE(st.st_mode):04o}, so group or others can access it; "
            f"run: chmod {want} {quoted}"
        )
    return None


def create_private_dir(path: Path) -> None:
    """Create `path` (and missing parents) with mode 0700 whatever the umask is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.mkdir(mode=0o700)
    os.chmod(path, 0o700)


def open_private_file(path: Path) -> int:
    """Create `path` with mode 0600 before any byte is written and return a write-only fd;
    fails if it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask may have removed bits, never added them; be exact
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_fully(fd: int, data: bytes) -> None:
    """Write all of `data` (os.write may write less) and fsync: durable when this returns."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)


def create_private_file(path: Path) -> None:
    """Create an empty `path` with mode 0600; fails if it exists."""
    os.close(open_private_file(path))
