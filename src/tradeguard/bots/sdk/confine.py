"""Confine the bot process before its code runs: rlimits, `no_new_privs`, then Landlock.

The host starts the bot inside bubblewrap (namespaces, a minimal read-only view); this module is
the second wall, applied by the process to itself so that it holds even if a bind mount is wider
than meant. Standard library only: it runs in the bot's virtualenv, which has nothing else.

Policy (JSON, from the supervisor): ``{"rlimits": {"as", "cpu", "nofile", "nproc", "fsize"},
"no_fork": true, "landlock": {"read": [...], "exec": [...], "write": [...]}}``. An empty policy
does nothing (the sandbox is off: paper mode only). Anything asked for and not possible raises
SystemExit: a bot never runs less confined than its policy says.
"""

from __future__ import annotations

import ctypes
import os
import resource
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["apply", "landlock_abi"]

_RLIMITS = {
    "as": resource.RLIMIT_AS,
    "cpu": resource.RLIMIT_CPU,
    "nofile": resource.RLIMIT_NOFILE,
    "nproc": resource.RLIMIT_NPROC,
    "fsize": resource.RLIMIT_FSIZE,
}

# Syscall numbers are the same on every architecture (added after the tables were unified).
_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

# Filesystem rights (linux/landlock.h). Every right of the kernel's ABI is handled, so what no
# rule grants is denied: device nodes (MAKE_CHAR/BLOCK), renames across rules (REFER), ioctls.
_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_REMOVE_DIR, _REMOVE_FILE, _MAKE_DIR, _MAKE_REG = 1 << 4, 1 << 5, 1 << 7, 1 << 8
_MAKE_SOCK, _MAKE_FIFO, _MAKE_SYM, _TRUNCATE, _IOCTL_DEV = (
    1 << 9,
    1 << 10,
    1 << 12,
    1 << 14,
    1 << 15,
)
_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
_NET_TCP = 0b11  # BIND_TCP | CONNECT_TCP, ABI 4: handled with no rule, so both are denied
_SCOPE_ALL = 0b11  # abstract unix sockets | signals, ABI 6: nothing outside the domain
# Rights that make sense on a file; a rule on a file with any other right is EINVAL.
_FILE_RIGHTS = _EXECUTE | _WRITE_FILE | _READ_FILE | _TRUNCATE | _IOCTL_DEV
_READ = _READ_FILE | _READ_DIR
_MAKE = _MAKE_DIR | _MAKE_REG | _MAKE_SOCK | _MAKE_FIFO | _MAKE_SYM
_WRITE = _READ | _WRITE_FILE | _TRUNCATE | _REMOVE_DIR | _REMOVE_FILE | _MAKE

# seccomp: which syscalls create a process, per architecture (audit arch, clone, others).
_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 22, 2
_CLONE_THREAD = 0x10000
_CLONE3 = 435
_PROCESS_SYSCALLS = {
    "x86_64": (0xC000003E, 56, (57, 58)),  # clone; fork, vfork
    "aarch64": (0xC00000B7, 220, ()),
}


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8)]
    _fields_ += [("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


class _RulesetAttr(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in ("handled_fs", "handled_net", "scoped")]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # the kernel's struct is packed: 12 bytes
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _syscall(number: int, *args: object) -> int:
    # syscall(2) is variadic: pass every integer as a full-width long, never a C int.
    wide = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    result: int = _libc.syscall(ctypes.c_long(number), *wide)
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return result


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, or 0 when it has none (or it is disabled)."""
    try:
        return _syscall(_CREATE_RULESET, None, 0, _CREATE_RULESET_VERSION)
    except OSError:
        return 0


def _set_rlimits(limits: Mapping[str, int]) -> None:
    # Soft = hard, so the bot cannot raise its own soft limit back up; no core dumps, which
    # would write the process's memory (its gateway token) to disk.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for name, value in limits.items():
        resource.setrlimit(_RLIMITS[name], (int(value), int(value)))


def _add_paths(ruleset: int, paths: Iterable[str], access: int, handled: int) -> None:
    for path in paths:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError as e:
            raise SystemExit(f"the bot's policy names {path}, which cannot be opened: {e}") from e
        try:
            allowed = access & handled
            if not os.path.isdir(path):
                allowed &= _FILE_RIGHTS
            rule = _PathBeneathAttr(allowed, fd)
            _syscall(_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0)
        finally:
            os.close(fd)


def _landlock(rules: Mapping[str, list[str]]) -> None:
    abi = landlock_abi()
    if abi < 1:
        raise SystemExit(
            "the bot's policy asks for Landlock but this kernel has none (or it is disabled): "
            "refusing to run the bot unconfined"
        )
    handled = _FS_BY_ABI[max(v for v in _FS_BY_ABI if v <= abi)]
    attr = _RulesetAttr(handled, _NET_TCP if abi >= 4 else 0, _SCOPE_ALL if abi >= 6 else 0)
    ruleset = _syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.sizeof(attr), 0)
    try:
        _add_paths(ruleset, rules.get("exec", []), _READ | _EXECUTE, handled)
        _add_paths(ruleset, rules.get("read", []), _READ, handled)
        _add_paths(ruleset, rules.get("write", []), _WRITE, handled)
        # Only character devices the sandbox's own /dev holds; reading and writing them leaks
        # nothing, and libraries expect /dev/null and /dev/urandom to open.
        for device in ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"):
            if os.path.exists(device):
                _add_paths(ruleset, [device], _READ_FILE | _WRITE_FILE, handled)
        _syscall(_RESTRICT_SELF, ruleset, 0)
    finally:
        os.close(ruleset)


def _forbid_fork() -> None:
    """No new processes, threads allowed. RLIMIT_NPROC would bound them, but the kernel exempts
    uid 0, and a bot started by a root service runs as uid 0 outside its user namespace."""
    machine = os.uname().machine
    if machine not in _PROCESS_SYSCALLS:
        raise SystemExit(f"cannot forbid fork on {machine}: refusing to run the bot")
    arch, clone, others = _PROCESS_SYSCALLS[machine]
    ld, jeq, jset, jge, ret = 0x20, 0x15, 0x45, 0x35, 0x06  # ld is BPF_LD|BPF_W|BPF_ABS
    allow, kill = 0x7FFF0000, 0x80000000
    eagain, enosys = 0x00050000 | 11, 0x00050000 | 38  # SECCOMP_RET_ERRNO | errno
    program = [
        # Another ABI (i386 via int 0x80, x32's high numbers) would dodge the numbers below.
        (ld, 0, 0, 4),  # seccomp_data.arch
        (jeq, 1, 0, arch),
        (ret, 0, 0, kill),
        (ld, 0, 0, 0),  # seccomp_data.nr
        (jge, 0, 1, 0x40000000),
        (ret, 0, 0, kill),
        # clone3 hides its flags in memory a filter cannot read: ENOSYS makes libc use clone.
        (jeq, 0, 1, _CLONE3),
        (ret, 0, 0, enosys),
        *[insn for nr in others for insn in ((jeq, 0, 1, nr), (ret, 0, 0, eagain))],
        (jeq, 1, 0, clone),
        (ret, 0, 0, allow),
        (ld, 0, 0, 16),  # the low half of clone's first argument: its flags
        (jset, 1, 0, _CLONE_THREAD),
        (ret, 0, 0, eagain),
        (ret, 0, 0, allow),
    ]
    filters = (_SockFilter * len(program))(*[_SockFilter(*insn) for insn in program])
    fprog = _SockFprog(len(program), filters)
    mode = ctypes.c_ulong(_SECCOMP_MODE_FILTER)
    if _libc.prctl(_PR_SET_SECCOMP, mode, ctypes.byref(fprog), ctypes.c_ulong(0), None) != 0:
        raise SystemExit(f"cannot install the seccomp filter: {os.strerror(ctypes.get_errno())}")


def apply(policy: Mapping[str, Any]) -> None:
    """Confine this process for good, as `policy` says (see the module's docstring)."""
    if not policy:
        return
    _set_rlimits(policy.get("rlimits", {}))
    # Landlock requires it of an unprivileged process; it also keeps setuid binaries inert.
    one, zero = ctypes.c_ulong(1), ctypes.c_ulong(0)
    if _libc.prctl(_PR_SET_NO_NEW_PRIVS, one, zero, zero, zero) != 0:
        raise SystemExit(f"cannot set no_new_privs: {os.strerror(ctypes.get_errno())}")
    if policy.get("no_fork"):
        _forbid_fork()
    if "landlock" in policy:
        _landlock(policy["landlock"])
