"""The HTTP API under load, beside a bare FastAPI endpoint in the same run.

1. Authenticated GET throughput. `GET /api/me` on the real app (SQLite store; every middleware:
   security headers, body limit, cross-site check, access log; the bearer token's signature and
   claims; the session looked up in the database; the per-user and global rate limits; the
   account loaded) against a bare FastAPI app whose one route answers a JSON body of the same
   size with no middleware. Each app runs in its own uvicorn process (one worker, no access
   log, httptools); load comes from `wrk` (C, keep-alive) when installed, else from a Python
   keep-alive client in separate processes. Target: real / bare >= 0.8.
2. Logins under attack. An attacker sends wrong passwords at `--attack-rate` a second (default
   1,000) for `--attack-seconds`, each from a different address (X-Forwarded-For through a
   trusted loopback proxy) and against a handful of real account names. Meanwhile the owner of
   one of those accounts logs in from the address they always use, and a second real user
   logs in from a brand-new address. Reported: how the attacker's attempts were answered (401:
   a password was hashed; 429: throttled before hashing), the owner's successes and latency,
   the new-address user's outcomes, and the server process's CPU use (one core = 100%).

Prints one JSON object. `--quick` for a smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _report import emit  # bench/ is on sys.path: the scripts run from there

PASSWORD = "correct horse battery staple, slowly"  # noqa: S105 - a bench account's password
OWNER_IP = "198.51.100.7"
NEWCOMER_IP = "198.51.100.99"


# -- the servers -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bare_app() -> Any:
    from fastapi import FastAPI

    app = FastAPI()
    body = {"id": 1, "name": "alice", "role": "trader", "email": "alice@example.com",
            "totp_enabled": False, "disabled": False, "vault_mode": "service",
            "created_at": "2026-12-05T12:00:00Z"}  # fmt: skip

    @app.get("/api/me")
    async def me() -> dict[str, Any]:
        return body

    return app


def _serve(kind: str, port: int) -> None:
    """Child process: run one app with uvicorn until killed."""
    import uvicorn

    if kind == "bare":
        uvicorn.run(_bare_app(), host="127.0.0.1", port=port, log_level="warning", access_log=False)
        return
    from tradeguard.config import load_settings
    from tradeguard.secrets import redact
    from tradeguard.web.app import SERVER_OPTIONS, create_app
    from tradeguard.web.runtime import open_context

    redact.install()
    with open_context(load_settings()) as ctx:
        # The server exactly as `tradeguard serve` runs it.
        uvicorn.run(create_app(ctx), host="127.0.0.1", port=port, **SERVER_OPTIONS)  # type: ignore[arg-type]


def _start(kind: str, port: int) -> subprocess.Popen[bytes]:
    log = Path(os.environ["TRADEGUARD_DATA_DIR"]).parent / f"{kind}-{port}.log"
    with log.open("w") as stderr:  # the server's log lines, out of the JSON's way
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", kind, "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return child
        except OSError:
            if child.poll() is not None:
                raise RuntimeError(f"the {kind} server exited with {child.returncode}") from None
            time.sleep(0.1)
    child.kill()
    raise RuntimeError(f"the {kind} server did not start")


def _stop(child: subprocess.Popen[bytes]) -> None:
    child.terminate()
    try:
        child.wait(timeout=20)
    except subprocess.TimeoutExpired:
        child.kill()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- set-up ------------------------------------------------------------------------------------


def _environment(data_dir: Path) -> dict[str, str]:
    from tradeguard.audit import AUDIT_KEY
    from tradeguard.crypto.keyring_file import init_keyring_file

    keys = data_dir.parent / "keys"
    keys.mkdir(mode=0o700)
    init_keyring_file(keys / "master.keyring")
    init_keyring_file(keys / "audit.keyring")
    return {
        "TRADEGUARD_DATA_DIR": str(data_dir),
        "TRADEGUARD_MASTER_KEY_FILE": str(keys / "master.keyring"),
        AUDIT_KEY.file_variable: str(keys / "audit.keyring"),
        "TRADEGUARD_TRUSTED_PROXIES": '["127.0.0.1"]',
        # Budgets far above the load, so part 1 measures the checks, not refusals.
        "TRADEGUARD_RATE_LIMIT_USER": "100000000/minute",
        "TRADEGUARD_RATE_LIMIT_GLOBAL": "100000000/minute",
    }


def _create_accounts(names: list[str]) -> None:
    from tradeguard.auth.accounts import Role
    from tradeguard.config import load_settings
    from tradeguard.secrets import Password
    from tradeguard.web.runtime import open_context

    with open_context(load_settings()) as ctx:
        for name in names:
            with Password(PASSWORD) as password:
                ctx.accounts.create_account(
                    name, f"{name}@example.com", password, Role.TRADER, actor="bench"
                )


def _post(port: int, path: str, body: dict[str, Any], ip: str) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(
            "POST", path, json.dumps(body),
            {"Content-Type": "application/json", "X-Forwarded-For": ip},
        )  # fmt: skip
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def _login(port: int, name: str, ip: str) -> str:
    status, body = _post(port, "/api/auth/login", {"login": name, "password": PASSWORD}, ip)
    if status != 200:
        raise RuntimeError(f"login of {name} answered {status}: {body}")
    return str(body["access_token"])


# -- part 1: throughput ------------------------------------------------------------------------


def _wrk(port: int, token: str | None, seconds: int, connections: int) -> float:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s"]
    if token:
        command += ["-H", f"Authorization: Bearer {token}"]
    done = subprocess.run(
        [*command, f"http://127.0.0.1:{port}/api/me"], capture_output=True, text=True, check=True
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    if non_2xx:
        raise RuntimeError(f"{non_2xx.group(1)} requests failed:\n{done.stdout}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout).group(1))  # type: ignore[union-attr]


def _python_client(port: int, token: str | None, seconds: float, out: Any) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    deadline, count = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        conn.request("GET", "/api/me", headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"GET /api/me answered {response.status}")
        count += 1
    out.put(count)


def _python_load(port: int, token: str | None, seconds: int, connections: int) -> float:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    workers = [
        ctx.Process(target=_python_client, args=(port, token, seconds, out))
        for _ in range(connections)
    ]
    for w in workers:
        w.start()
    total = sum(out.get() for _ in workers)
    for w in workers:
        w.join()
    return total / seconds


def _use_wrk() -> bool:
    """wrk when installed (Debian's `wrk`), unless TG_BENCH_LOAD=python asks for the fallback."""
    return os.environ.get("TG_BENCH_LOAD") != "python" and shutil.which("wrk") is not None


def _throughput(kind: str, token: str | None, seconds: int) -> float:
    port = _free_port()
    server = _start(kind, port)
    try:
        load = _wrk if _use_wrk() else _python_load
        load(port, token, 1, 4)  # warm-up
        return load(port, token, seconds, 16 if load is _wrk else 4)
    finally:
        _stop(server)


# -- part 2: logins under attack ---------------------------------------------------------------


async def _attack(port: int, rate: int, seconds: float, names: list[str]) -> Counter[int]:
    import aiohttp

    outcomes: Counter[int] = Counter()
    url = f"http://127.0.0.1:{port}/api/auth/login"
    rng = random.Random(7)
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as http_session:

        async def one(n: int) -> None:
            ip = f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
            body = {"login": rng.choice(names), "password": f"guess-{n}-{rng.random()}"}
            try:
                async with http_session.post(
                    url, json=body, headers={"X-Forwarded-For": ip}
                ) as response:
                    await response.read()
                    outcomes[response.status] += 1
            except aiohttp.ClientError:
                outcomes[0] += 1

        tasks, start, n = [], time.monotonic(), 0
        while (elapsed := time.monotonic() - start) < seconds:
            due = int(elapsed * rate)
            while n < due:
                tasks.append(asyncio.ensure_future(one(n)))
                n += 1
            await asyncio.sleep(0.002)
        await asyncio.gather(*tasks)
    return outcomes


def _legit(port: int, name: str, ip: str, seconds: float, every: float, out: Any) -> None:
    results: list[tuple[int, float]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        began = time.perf_counter()
        status, _ = _post(port, "/api/auth/login", {"login": name, "password": PASSWORD}, ip)
        results.append((status, (time.perf_counter() - began) * 1000))
        time.sleep(every)
    out.put(results)


def _summary(results: list[tuple[int, float]]) -> dict[str, Any]:
    ok = [ms for status, ms in results if status == 200]
    return {
        "attempts": len(results),
        "succeeded": len(ok),
        "statuses": dict(Counter(str(status) for status, _ in results)),
        "p50_ms": round(statistics.median(ok), 1) if ok else None,
        "max_ms": round(max(ok), 1) if ok else None,
    }


def _under_attack(names: list[str], rate: int, seconds: float) -> dict[str, Any]:
    port = _free_port()
    server = _start("tradeguard", port)
    try:
        _login(port, names[0], OWNER_IP)  # the owner's usual address becomes known
        ctx = multiprocessing.get_context("spawn")
        owner_out, newcomer_out = ctx.Queue(), ctx.Queue()
        owner = ctx.Process(
            target=_legit, args=(port, names[0], OWNER_IP, seconds, 0.25, owner_out)
        )
        newcomer = ctx.Process(
            target=_legit, args=(port, names[1], NEWCOMER_IP, seconds, 1.0, newcomer_out)
        )
        cpu_before, wall_before = _cpu_seconds(server.pid), time.monotonic()
        owner.start()
        newcomer.start()
        outcomes = asyncio.run(_attack(port, rate, seconds, names))
        owner_results, newcomer_results = owner_out.get(), newcomer_out.get()
        owner.join()
        newcomer.join()
        cpu = (_cpu_seconds(server.pid) - cpu_before) / (time.monotonic() - wall_before)
    finally:
        _stop(server)
    sent = sum(outcomes.values())
    return {
        "attack_rate_per_s": rate,
        "attack_seconds": seconds,
        "attacker_attempts": sent,
        "attacker_statuses": {str(k): v for k, v in sorted(outcomes.items())},
        "attacker_hashed_per_s": round(outcomes[401] / seconds, 1),
        "owner_known_address": _summary(owner_results),
        "newcomer_new_address": _summary(newcomer_results),
        "server_cpu_percent_of_one_core": round(cpu * 100, 1),
    }


# -- main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--attack-rate", type=int, default=1000)
    parser.add_argument("--attack-seconds", type=float, default=10.0)
    parser.add_argument("--serve", choices=["bare", "tradeguard"])
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve, args.port)
        return
    seconds = 2 if args.quick else args.seconds
    attack_seconds = 2.0 if args.quick else args.attack_seconds
    attack_rate = 200 if args.quick else args.attack_rate
    with tempfile.TemporaryDirectory(prefix="tg-bench-api-") as tmp:
        data_dir = Path(tmp) / "data"
        os.environ.update(_environment(data_dir))
        names = ["alice", "bob", "carol", "dave", "erin"]
        _create_accounts(names)
        port = _free_port()
        server = _start("tradeguard", port)
        try:
            token = _login(port, names[2], OWNER_IP)
        finally:
            _stop(server)
        bare = _throughput("bare", None, seconds)
        real = _throughput("tradeguard", token, seconds)
        attack = _under_attack(names, attack_rate, attack_seconds)
    emit(
        {
            "benchmark": "api",
            "load_generator": "wrk" if _use_wrk() else "python http.client",
            "authenticated_get": {
                "bare_fastapi_rps": round(bare),
                "tradeguard_rps": round(real),
                "ratio": round(real / bare, 3),
                "target_ratio": 0.8,
                "met": real / bare >= 0.8,
            },
            "login_under_attack": attack,
            "load_average": os.getloadavg()[0],
        }
    )


if __name__ == "__main__":
    main()
