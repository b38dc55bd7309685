"""The bot sandbox, tested with real processes: a malicious bot script runs in bubblewrap exactly
as `sandbox.command` builds it, confines itself with `tradeguard.sdk.confine.apply(policy)`,
tries every escape it can, and reports each outcome (the exception and its errno) as JSON.

Two runs share the module (each costs ~0.2 s): the bot as the supervisor would start it, and the
same bot with another bot's state dir and the platform's data dir bound into its view, which
tests Landlock alone (the mount namespace would otherwise hide them first). Each run also records
what it saw before confining itself, so every denial is checked against a control.
"""

from __future__ import annotations

import json
import os
import resource
import secrets
import socket
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tradeguard.bots import sandbox
from tradeguard.bots.sandbox import (
    SANDBOX_UID,
    Limits,
    SandboxSpec,
    SandboxUnavailable,
    Support,
    command,
    policy,
)
from tradeguard.bots.sdk import confine
from tradeguard.bots.venvs import VenvError, create_venv, install_sdk, site_packages
from tradeguard.config import Settings

# The malicious bot. Each attempt is recorded as "ok[:value]" or "<exception> <errno name>".
ESCAPE_SCRIPT = r"""
import ctypes, errno, importlib, json, os, resource, socket, subprocess, sys, threading

plan = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
out = {"pre": {}, "post": {}}


def attempt(fn):
    try:
        value = fn()
    except socket.gaierror as e:
        return f"gaierror {e.errno}"
    except BaseException as e:
        code = getattr(e, "errno", None)
        return f"{type(e).__name__} {errno.errorcode.get(code, code)}" if code else type(e).__name__
    return "ok" if value is None else f"ok:{value}"


def read(path):
    with open(path, "rb") as f:
        return len(f.read())


def write(path):
    with open(path, "a") as f:
        f.write("x")


def tcp(host, port):
    with socket.socket() as s:
        s.settimeout(2)
        s.connect((host, port))


def udp(host, port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        return s.sendto(b"escape", (host, port))


def tcp_bind():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()


def unix(path):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall(b"hello")


def ptrace(pid):
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    if libc.ptrace(16, pid, None, None) == -1:  # PTRACE_ATTACH
        raise OSError(ctypes.get_errno(), "ptrace")


def forks(n):
    made, last = 0, None
    for _ in range(n):
        try:
            pid = os.fork()
        except OSError as e:
            last = e
            continue
        if pid == 0:
            os._exit(0)
        made += 1
    return f"{made} {type(last).__name__} {errno.errorcode.get(last.errno)}" if last else made


def threads(n):
    stop, started = threading.Event(), []
    try:
        for _ in range(n):
            t = threading.Thread(target=stop.wait)
            t.start()
            started.append(t)
    except RuntimeError:
        return f"{len(started)} RuntimeError"
    finally:
        stop.set()
        for t in started:
            t.join()
    return len(started)


def no_new_privs():
    return libc.prctl(39, 0, 0, 0, 0)  # PR_GET_NO_NEW_PRIVS


targets = plan["targets"]
pre = out["pre"]
pre["token"] = os.read(plan["token_fd"], 100).decode()
pre["uid"] = [os.getuid(), os.getgid()]
pre["root"] = sorted(os.listdir("/"))
pre["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
pre["env"] = dict(os.environ)
pre["hostname"] = socket.gethostname()
pre["cap_eff"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")][0]
pre["tcp_loopback"] = attempt(lambda: tcp("127.0.0.1", plan["tcp_port"]))
pre["tcp_remote"] = attempt(lambda: tcp("10.0.0.1", 80))
for name, path in targets.items():
    pre["read " + name] = attempt(lambda: read(path))

from tradeguard.sdk import confine  # noqa: E402

confine.apply(plan["policy"])
post = out["post"]
post["landlock_abi"] = confine.landlock_abi()
post["no_new_privs"] = no_new_privs()
post["rlimits"] = {
    name: list(resource.getrlimit(getattr(resource, "RLIMIT_" + name.upper())))
    for name in ("as", "cpu", "nofile", "nproc", "fsize", "core")
}
post["raise nofile"] = attempt(lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096)))
for name, path in targets.items():
    post["read " + name] = attempt(lambda: read(path))
post["list other state"] = attempt(lambda: os.listdir(targets["other state"].rsplit("/", 1)[0]))
post["list /proc"] = attempt(lambda: os.listdir("/proc"))
post["read /proc/1/environ"] = attempt(lambda: read("/proc/1/environ"))
post["read /proc/1/mem"] = attempt(lambda: read("/proc/1/mem"))
post["read host pid environ"] = attempt(lambda: read(f"/proc/{plan['host_pid']}/environ"))
post["tcp loopback"] = attempt(lambda: tcp("127.0.0.1", plan["tcp_port"]))
post["tcp remote"] = attempt(lambda: tcp("10.0.0.1", 80))
post["tcp bind"] = attempt(tcp_bind)
post["udp loopback"] = attempt(lambda: udp("127.0.0.1", plan["udp_port"]))
post["udp remote"] = attempt(lambda: udp("10.0.0.1", 53))
post["dns"] = attempt(lambda: socket.getaddrinfo("example.com", 443))
post["gateway socket"] = attempt(lambda: unix(plan["gateway_socket"]))
post["write state"] = attempt(lambda: write(plan["state_dir"] + "/state.json"))
for name, path in plan["writes"].items():
    post["write " + name] = attempt(lambda: write(path))
link = os.path.join(plan["state_dir"], f"link-{os.urandom(4).hex()}")
os.symlink(plan["writes"]["code"], link)
post["write through a symlink"] = attempt(lambda: write(link))
post["fork bomb"] = attempt(lambda: forks(200))
post["subprocess curl"] = attempt(lambda: subprocess.run(["curl", "http://10.0.0.1/"]))
post["thread bomb"] = attempt(lambda: threads(1000))
post["10 GB"] = attempt(lambda: len(bytearray(10 * 1024**3)))
post["ptrace pid 1"] = attempt(lambda: ptrace(1))
post["ptrace parent"] = attempt(lambda: ptrace(os.getppid()))
post["ptrace host pid"] = attempt(lambda: ptrace(plan["host_pid"]))
post["signal pid 1"] = attempt(lambda: os.kill(1, 0))
post["import tradeguard.sdk"] = attempt(lambda: importlib.import_module("tradeguard.sdk").__file__)
post["import tradeguard.vault"] = attempt(lambda: __import__("tradeguard.vault"))
post["import tradeguard.config"] = attempt(lambda: __import__("tradeguard.config"))
# Last: a successful exec would replace this process, and the report with it.
post["exec /bin/sh"] = attempt(lambda: os.execv("/bin/sh", ["sh", "-c", "echo escaped"]))
post["exec curl"] = attempt(lambda: os.execv("/usr/bin/curl", ["curl", "http://10.0.0.1/"]))
post["exec python"] = attempt(lambda: os.execv(sys.executable, [sys.executable, "-c", "0"]))
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Escape:
    """One sandboxed run of the malicious bot, and what the host saw meanwhile."""

    pre: dict[str, Any]
    post: dict[str, Any]
    tcp_connections: int
    udp_datagrams: int
    gateway_bytes: bytes
    spec: SandboxSpec
    token: str
    secret_env: dict[str, str]


@dataclass(frozen=True)
class World:
    spec: SandboxSpec
    other_state: Path  # another bot's state dir
    data_dir: Path  # the platform's: database, master key, audit key


def _world(root: Path, venv: Path) -> World:
    dirs = {name: root / name for name in ("code", "state", "run", "other-state", "data")}
    for path in dirs.values():
        path.mkdir(mode=0o700)
    (dirs["code"] / "bot.py").write_text(ESCAPE_SCRIPT)
    (dirs["other-state"] / "state.json").write_text(secrets.token_hex(16))
    for name in ("tradeguard.db", "master.key", "audit.keyring"):
        (dirs["data"] / name).write_text(secrets.token_hex(32))
        (dirs["data"] / name).chmod(0o600)
    limits = Limits.from_settings(Settings(data_dir=dirs["data"], runtime_dir=dirs["run"]))
    spec = SandboxSpec(venv, dirs["code"], dirs["state"], dirs["run"], limits)
    return World(spec, dirs["other-state"], dirs["data"])


def _bind_also(argv: list[str], paths: list[Path]) -> list[str]:
    """`argv` with `paths` bound read-write into the view (before /tmp turns read-only)."""
    at = next(i for i, arg in enumerate(argv) if arg == "--remount-ro" and argv[i + 1] == "/tmp")
    extra = [arg for path in paths for arg in ("--bind", str(path), str(path))]
    return argv[:at] + extra + argv[at:]


def _run_escape(world: World, *, bind_others: bool) -> Escape:
    spec = world.spec
    token = secrets.token_hex(32)
    secret_env = {
        "TRADEGUARD_MASTER_KEY": secrets.token_hex(32),
        "TRADEGUARD_DATABASE_URL": f"sqlite:///{world.data_dir}/tradeguard.db",
    }
    with (
        socket.create_server(("127.0.0.1", 0)) as tcp_server,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp_server,
        socket.socket(socket.AF_UNIX) as gateway,
    ):
        udp_server.bind(("127.0.0.1", 0))
        gateway_path = spec.runtime_dir / f"{secrets.token_hex(4)}.sock"
        gateway.bind(str(gateway_path))
        gateway.listen()
        read_end, write_end = os.pipe()
        os.write(write_end, token.encode())
        os.close(write_end)
        targets = {
            "other state": world.other_state / "state.json",
            "tradeguard.db": world.data_dir / "tradeguard.db",
            "master.key": world.data_dir / "master.key",
            "audit key": world.data_dir / "audit.keyring",
        }
        plan = {
            "policy": policy(spec),
            "token_fd": read_end,
            "host_pid": os.getpid(),
            "tcp_port": tcp_server.getsockname()[1],
            "udp_port": udp_server.getsockname()[1],
            "gateway_socket": str(gateway_path),
            "state_dir": str(spec.state_dir),
            "targets": {name: str(path) for name, path in targets.items()},
            "writes": {
                "code": str(spec.code_dir / "bot.py"),
                "venv": str(site_packages(spec.venv) / "tradeguard" / "__init__.py"),
                "python": str(spec.python_prefix / "lib" / "evil.py"),
                "tmp": "/tmp/evil",
                "host home dotfile": os.path.expanduser("~/.bashrc"),
                "other state": str(world.other_state / "state.json"),
                "data dir": str(world.data_dir / "tradeguard.db"),
            },
        }
        inner = [str(spec.venv / "bin" / "python"), "-I", str(spec.code_dir / "bot.py")]
        argv = command(spec, [*inner, json.dumps(plan)])
        if bind_others:
            argv = _bind_also(argv, [world.other_state, world.data_dir])
        try:
            done = subprocess.run(
                argv,
                pass_fds=[read_end],
                env={**os.environ, **secret_env},
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        finally:
            os.close(read_end)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        tcp_server.setblocking(False)
        udp_server.setblocking(False)
        gateway.settimeout(1)
        tcp_connections = udp_datagrams = 0
        try:
            tcp_server.accept()[0].close()
            tcp_connections += 1
        except BlockingIOError:
            pass
        try:
            udp_server.recv(100)
            udp_datagrams += 1
        except BlockingIOError:
            pass
        conn, _ = gateway.accept()
        with conn:
            gateway_bytes = conn.recv(100)
    return Escape(
        report["pre"],
        report["post"],
        tcp_connections,
        udp_datagrams,
        gateway_bytes,
        spec,
        token,
        secret_env,
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, sdk_venv: Path) -> World:
    return _world(tmp_path_factory.mktemp("sandbox"), sdk_venv)


@pytest.fixture(scope="module")
def escape(sandbox_support: Support, world: World) -> Escape:
    """The bot as the supervisor starts it."""
    return _run_escape(world, bind_others=False)


@pytest.fixture(scope="module")
def landlock_only(sandbox_support: Support, world: World) -> Escape:
    """The same bot with another bot's state dir and the data dir bound into its view."""
    return _run_escape(world, bind_others=True)


HAS_CURL = Path("/usr/bin/curl").exists()
EACCES, EROFS, ENOENT = "PermissionError EACCES", "OSError EROFS", "FileNotFoundError ENOENT"

# What each attempt of the bot, as the supervisor starts it, must come to after `confine.apply`.
EXPECTED = {
    # Another bot's files and the platform's secrets are not in its view at all.
    "read other state": ENOENT,
    "list other state": ENOENT,
    "read tradeguard.db": ENOENT,
    "read master.key": ENOENT,
    "read audit key": ENOENT,
    "write other state": ENOENT,
    "write data dir": ENOENT,
    # Its own PID namespace holds bwrap and itself; Landlock refuses /proc beyond that.
    "list /proc": EACCES,
    "read /proc/1/environ": EACCES,
    "read /proc/1/mem": EACCES,
    "read host pid environ": ENOENT,
    # No network: Landlock refuses TCP, the empty network namespace has no route for UDP.
    "tcp loopback": EACCES,
    "tcp remote": EACCES,
    "tcp bind": EACCES,
    "udp remote": "OSError ENETUNREACH",
    "dns": f"gaierror {socket.EAI_AGAIN}",
    # Its state dir is the only writable place.
    "write state": "ok",
    "write code": EROFS,
    "write venv": EROFS,
    "write python": EROFS,
    "write tmp": EROFS,
    "write host home dotfile": EACCES,
    "write through a symlink": EROFS,
    # No new processes (seccomp), bounded threads and memory, limits that stay put.
    "fork bomb": "ok:0 BlockingIOError EAGAIN",
    "subprocess curl": "BlockingIOError EAGAIN",
    "10 GB": "MemoryError",
    "raise nofile": "ValueError",
    # Nothing outside its Landlock domain can be traced or signalled.
    "ptrace pid 1": "PermissionError EPERM",
    "ptrace parent": "PermissionError EPERM",
    "ptrace host pid": "ProcessLookupError ESRCH",
    "signal pid 1": "PermissionError EPERM",
    # Only the SDK of tradeguard.
    "import tradeguard.vault": "ModuleNotFoundError",
    "import tradeguard.config": "ModuleNotFoundError",
    # Nothing executes: no execute right anywhere the dynamic loader lives.
    "exec /bin/sh": EACCES,
    "exec curl": EACCES if HAS_CURL else ENOENT,
    "exec python": EACCES,
    # The gateway socket is the one way out.
    "gateway socket": "ok",
}


@pytest.mark.parametrize(("attempt", "outcome"), EXPECTED.items(), ids=list(EXPECTED))
def test_each_escape_attempt_fails_the_way_it_should(
    escape: Escape, attempt: str, outcome: str
) -> None:
    assert escape.post[attempt] == outcome


def test_every_attempt_the_bot_made_is_checked(escape: Escape) -> None:
    checked_elsewhere = {"landlock_abi", "no_new_privs", "rlimits", "thread bomb"}
    checked_elsewhere |= {"udp loopback", "import tradeguard.sdk"}
    assert set(escape.post) == set(EXPECTED) | checked_elsewhere


def test_before_confining_itself_the_namespaces_already_hide_the_host(escape: Escape) -> None:
    pre = escape.pre
    assert pre["pids"] == [1, 2]  # bwrap and the bot; the host's processes do not exist here
    assert pre["tcp_loopback"] == "ConnectionRefusedError ECONNREFUSED"  # its own loopback
    assert pre["tcp_remote"] == "OSError ENETUNREACH"
    for name in ("other state", "tradeguard.db", "master.key", "audit key"):
        assert pre[f"read {name}"] == ENOENT
    assert pre["uid"] == [SANDBOX_UID, SANDBOX_UID]
    assert pre["cap_eff"] == "0000000000000000"
    assert pre["hostname"] == "bot"


def test_the_view_holds_no_etc_and_nothing_the_bot_does_not_need(escape: Escape) -> None:
    spec = escape.spec
    tops = {"dev", "proc", "tmp", "usr"}
    tops |= {
        p.lstrip("/") for p in ("/bin", "/lib", "/lib64", "/lib32", "/libx32") if os.path.lexists(p)
    }
    tops |= {path.parts[1] for path in spec.bot_paths().values()}
    assert escape.pre["root"] == sorted(tops)
    assert "etc" not in escape.pre["root"]  # no passwd, no resolv.conf, no hosts


def test_the_environment_is_five_fixed_variables_whatever_the_host_has(escape: Escape) -> None:
    env = escape.pre["env"]
    state = str(escape.spec.state_dir)
    assert env == {
        "PATH": "/usr/bin",
        "HOME": state,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "PWD": state,  # bwrap's, after --chdir
    }
    assert escape.secret_env  # the host did have TRADEGUARD_* variables set
    assert not set(escape.secret_env.values()) & set(env.values())


def test_the_token_arrives_on_the_inherited_descriptor(escape: Escape) -> None:
    assert escape.pre["token"] == escape.token


def test_the_host_listeners_get_nothing_and_the_gateway_gets_the_bot(escape: Escape) -> None:
    assert escape.tcp_connections == 0
    # A datagram to 127.0.0.1 is sent, but on the sandbox's own loopback: the host's never sees it.
    assert escape.post["udp loopback"] == "ok:6"
    assert escape.udp_datagrams == 0
    assert escape.gateway_bytes == b"hello"


def test_the_bot_runs_confined_as_its_policy_says(escape: Escape) -> None:
    post, limits = escape.post, escape.spec.limits
    assert post["landlock_abi"] == confine.landlock_abi() >= 1
    assert post["no_new_privs"] == 1
    assert post["rlimits"] == {
        "as": [limits.memory_bytes] * 2,
        "cpu": [limits.cpu_seconds] * 2,
        "nofile": [limits.open_files] * 2,
        "nproc": [limits.processes] * 2,
        "fsize": [limits.file_bytes] * 2,
        "core": [0, 0],
    }


def test_threads_are_allowed_but_bounded(escape: Escape) -> None:
    # RLIMIT_NPROC bounds them when the service is not root; the address-space limit always
    # does (glibc reserves a stack and a malloc arena per thread).
    count, error = escape.post["thread bomb"].removeprefix("ok:").split()
    assert error == "RuntimeError"
    assert 1 <= int(count) <= escape.spec.limits.processes


def test_the_bot_imports_the_sdk_from_its_own_virtualenv(escape: Escape) -> None:
    found = Path(escape.post["import tradeguard.sdk"].removeprefix("ok:"))
    assert found == site_packages(escape.spec.venv) / "tradeguard" / "sdk" / "__init__.py"


def test_the_host_is_fine_after_the_bombs(escape: Escape) -> None:
    assert subprocess.run(["true"], check=False).returncode == 0
    assert len(bytearray(64 * 1024 * 1024)) == 64 * 1024 * 1024


# -- Landlock alone: the paths bound into the view, read-write ---------------------------------


@pytest.mark.parametrize("name", ["other state", "tradeguard.db", "master.key", "audit key"])
def test_landlock_alone_refuses_reading_what_is_in_view_but_not_in_the_policy(
    landlock_only: Escape, name: str
) -> None:
    assert landlock_only.pre[f"read {name}"].startswith("ok:")  # the bind did expose it
    assert landlock_only.post[f"read {name}"] == EACCES


@pytest.mark.parametrize("attempt", ["list other state", "write other state", "write data dir"])
def test_landlock_alone_refuses_listing_and_writing_there(
    landlock_only: Escape, attempt: str
) -> None:
    assert landlock_only.post[attempt] == EACCES


# -- probe, command, policy --------------------------------------------------------------------


def test_probe_finds_landlock_user_namespaces_and_bwrap(sandbox_support: Support) -> None:
    assert sandbox_support.ok
    assert sandbox_support.reason is None
    assert sandbox_support.landlock_abi == confine.landlock_abi() >= 1
    assert sandbox_support.user_namespaces
    assert sandbox_support.bwrap is not None
    assert os.access(sandbox_support.bwrap, os.X_OK)


def test_a_bwrap_planted_on_path_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    planted = tmp_path / "bin" / "bwrap"
    planted.parent.mkdir()
    planted.write_text("#!/bin/sh\nexit 0\n")
    planted.chmod(0o755)
    monkeypatch.setenv("PATH", f"{planted.parent}:{os.environ['PATH']}")
    assert sandbox.find_bwrap() != planted


@pytest.fixture
def spec(tmp_path: Path) -> SandboxSpec:
    dirs = [tmp_path / name for name in ("venv", "code", "state", "run")]
    for path in dirs:
        path.mkdir()
    (dirs[0] / "pyvenv.cfg").write_text(f"home = {sys.base_prefix}/bin\n")
    settings = Settings(
        data_dir=tmp_path / "data",
        bot_memory_mb=512,
        bot_cpu_seconds=60,
        bot_max_open_files=64,
        bot_max_processes=8,
        bot_max_file_mb=16,
    )
    return SandboxSpec.from_settings(
        settings, venv=dirs[0], code_dir=dirs[1], state_dir=dirs[2], runtime_dir=dirs[3]
    )


def _options(argv: list[str], flag: str, arity: int) -> list[tuple[str, ...]]:
    head = argv[: argv.index("--")]
    return [tuple(head[i + 1 : i + 1 + arity]) for i, arg in enumerate(head) if arg == flag]


def test_command_shape(spec: SandboxSpec) -> None:
    inner = [str(spec.venv / "bin" / "python"), "-I", "-m", "tradeguard.sdk.runner"]
    argv = command(spec, inner)
    assert argv[argv.index("--") + 1 :] == inner
    head = argv[: argv.index("--")]
    for flag in ("--unshare-all", "--unshare-user", "--unshare-cgroup", "--disable-userns"):
        assert flag in head
    for flag in ("--die-with-parent", "--new-session", "--clearenv"):
        assert flag in head
    assert _options(argv, "--cap-drop", 1) == [("ALL",)]
    assert _options(argv, "--uid", 1) == _options(argv, "--gid", 1) == [(str(SANDBOX_UID),)]
    assert dict(_options(argv, "--setenv", 2)) == {
        "PATH": "/usr/bin",
        "HOME": str(spec.state_dir),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
    }
    # The state dir is the only read-write bind; the rest are read-only, at the same path.
    assert _options(argv, "--bind", 2) == [(str(spec.state_dir),) * 2]
    ro = _options(argv, "--ro-bind", 2)
    assert all(source == target for source, target in ro)
    assert {source for source, _ in ro} >= {
        "/usr",
        sys.base_prefix,
        str(spec.venv),
        str(spec.code_dir),
        str(spec.runtime_dir),
    }
    assert not any(arg == "/etc" or arg.startswith("/etc/") for arg in head)
    # The installation's site-packages are hidden behind an empty read-only tmpfs.
    base = {"base": sys.base_prefix, "platbase": sys.base_prefix}
    site = sysconfig.get_path("purelib", "posix_prefix", base)
    assert (site,) in _options(argv, "--tmpfs", 1)
    assert (site,) in _options(argv, "--remount-ro", 1)
    # /tmp turns read-only after the bot's dirs are bound (they may live below it).
    assert head.index("/tmp", head.index("--remount-ro")) > head.index(str(spec.state_dir))
    assert _options(argv, "--chdir", 1) == [(str(spec.state_dir),)]


def test_command_refuses_a_relative_path(spec: SandboxSpec) -> None:
    bad = SandboxSpec(Path("venv"), spec.code_dir, spec.state_dir, spec.runtime_dir, spec.limits)
    with pytest.raises(SandboxUnavailable, match="virtualenv venv is not an absolute path"):
        command(bad, ["python"])


def test_command_refuses_a_missing_dir_and_says_to_create_it(spec: SandboxSpec) -> None:
    spec.state_dir.rmdir()
    with pytest.raises(SandboxUnavailable, match=r"state dir .* create it before starting"):
        command(spec, ["python"])


def test_command_refuses_a_folder_that_is_no_virtualenv(spec: SandboxSpec) -> None:
    (spec.venv / "pyvenv.cfg").unlink()
    with pytest.raises(SandboxUnavailable, match=r"not a virtualenv .* recreate"):
        command(spec, ["python"])


def test_policy_shape(spec: SandboxSpec) -> None:
    mib = 1024 * 1024
    prefix = Path(sys.base_prefix)
    got = policy(spec)
    assert got["rlimits"] == {
        "as": 512 * mib,
        "cpu": 60,
        "nofile": 64,
        "nproc": 8,
        "fsize": 16 * mib,
    }
    assert got["no_fork"] is True
    rules = got["landlock"]
    assert rules["write"] == [str(spec.state_dir)]
    assert rules["exec"] == [str(prefix / "bin"), str(spec.venv / "bin")]
    assert {"/usr", str(prefix), str(spec.venv), str(spec.code_dir)} <= set(rules["read"])
    assert not {str(spec.state_dir), str(spec.runtime_dir), "/", "/etc", "/proc"} & set(
        rules["read"]
    )
    json.dumps(got)  # it travels to the bot as JSON


# -- confine, outside the sandbox --------------------------------------------------------------


def test_an_empty_policy_confines_nothing() -> None:
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    confine.apply({})
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == before


def test_confine_fails_closed_on_a_path_it_cannot_open(sdk_venv: Path, tmp_path: Path) -> None:
    missing = tmp_path / secrets.token_hex(4)
    code = (
        "from tradeguard.sdk import confine\n"
        f"confine.apply({{'landlock': {{'read': [{str(missing)!r}]}}}})\n"
        "print('ran unconfined')\n"
    )
    done = subprocess.run(
        [str(sdk_venv / "bin" / "python"), "-I", "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert f"the bot's policy names {missing}, which cannot be opened" in done.stderr


# -- the bot's virtualenv ----------------------------------------------------------------------


def test_the_virtualenv_holds_the_sdk_alone(sdk_venv: Path) -> None:
    package = site_packages(sdk_venv) / "tradeguard"
    source = Path(confine.__file__).parent
    assert sorted(p.name for p in package.iterdir()) == ["__init__.py", "__pycache__", "sdk"]
    copied = sorted(p.name for p in (package / "sdk").glob("*.py"))
    assert copied == sorted(p.name for p in source.glob("*.py"))
    assert (package / "sdk" / "confine.py").read_bytes() == (source / "confine.py").read_bytes()
    cfg = (sdk_venv / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in cfg
    assert not (sdk_venv / "bin" / "pip").exists()


def test_create_venv_refuses_an_existing_path(tmp_path: Path) -> None:
    with pytest.raises(VenvError, match="already exists: remove it first"):
        create_venv(tmp_path)


def test_install_sdk_replaces_an_older_copy(tmp_path: Path) -> None:
    site = site_packages(tmp_path / "venv")
    stale = site / "tradeguard" / "vault.py"
    stale.parent.mkdir(parents=True)
    stale.write_text("")
    install_sdk(tmp_path / "venv")
    assert not stale.exists()
    assert (site / "tradeguard" / "sdk" / "runner.py").is_file()


def test_install_sdk_refuses_a_folder_that_is_no_virtualenv(tmp_path: Path) -> None:
    with pytest.raises(VenvError, match="is not a virtualenv made by create_venv"):
        install_sdk(tmp_path)
