"""The benchmarks run and report what they claim; their figures are read in `make bench`, never
asserted here (timings in tests are noise, not evidence)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parents[2]


def run_bench(script: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run bench/`script` with `args`; the JSON object it prints. Its stderr tail on failure."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize("guard", ["c", "python"])
def test_redaction_bench_reports_all_pipelines_and_no_leaks(guard: str) -> None:
    python_guard = ["--python-guard"] if guard == "python" else []
    result = run_bench("redaction.py", "--lines", "2000", "--pool", "1000", *python_guard)
    assert result["guard"] == guard
    for stream in ("representative", "adversarial"):
        figures = result[stream]
        for key in ("plain_lines_per_s", "filter_lines_per_s", "naive_lines_per_s"):
            assert figures[key] > 0
        assert figures["secret_values_in_pool"] > 0
        assert figures["secret_values_leaked_filter"] == 0
    assert result["met"]["no_leaks"] is True
    assert result["peak_rss_mb"] > 0


def test_vault_bench_reports_every_figure_and_checks_the_rewrapped_keys() -> None:
    result = run_bench("vault.py", "--users", "200", "--skip-postgres")
    assert result["unlock_argon2id"]["unlock_median_ms"] > 0
    assert result["decrypt_field"]["decrypt_median_us"] > 0
    assert result["use_okx_credential"]["fields"] == 3
    assert result["rewrap_sqlite"]["keys"] == 200
    assert result["rewrap_sqlite"]["verified_with_v2_only_keyring"] > 0
    assert "skipped" in result["rewrap_postgresql"]


def test_audit_bench_reports_every_figure_with_its_target() -> None:
    result = run_bench("audit.py", "--quick", "--skip-postgres")
    assert result["mode"] == "quick"
    assert result["large_log_build"]["entries"] == 20_000
    assert result["large_log_build"]["cache"] == "none (temporary)"
    sqlite = result["sqlite"]
    appends = sqlite["appends"]
    for key in ("one_caller_window_0", "one_caller_default_window", "threads_64", "asyncio_64"):
        figure = appends[key]
        if "skipped" in figure:  # AuditLog without append_async
            continue
        assert figure["appends_per_s"] > 0
        assert figure["target_per_s"] > 0
        assert isinstance(figure["meets_target"], bool)
    assert appends["log_verified_entries"] > 0
    baseline = sqlite["baseline_raw_inserts"]
    assert baseline["one_row_per_commit_per_s"] > 0
    assert baseline["rows_64_per_commit_per_s"] > 0
    assert sqlite["verify"]["entries"] == 20_000
    assert sqlite["verify"]["entries_per_s"] > 0
    assert isinstance(sqlite["verify"]["meets_target"], bool)
    proofs = sqlite["inclusion_proof"]
    assert proofs["proofs"] == proofs["proofs_checked"] == 200
    assert proofs["request_median_ms"] > 0
    assert isinstance(proofs["meets_target"], bool)
    assert "skipped" in result["postgresql"]
    assert set(result["met"]) >= {"sqlite_threads_64", "sqlite_verify", "sqlite_inclusion_proof"}
    assert result["peak_rss_mb"] > 0


def test_risk_bench_reports_checks_fills_baseline_and_the_target() -> None:
    result = run_bench("risk.py", "--quick")
    assert result["mode"] == "quick"
    assert result["pre_trade_intent"]["pre_trade"]["p99_us"] > 0
    assert result["denied_halted"]["reason"] == "halted"
    assert result["denied_malformed"]["reason"] == "malformed"
    assert result["on_fill"]["state_after"] == "ACTIVE"  # no breaker fired on winning trades
    assert result["on_fill"]["closed_trades"] > 0
    assert result["target_p99_us"] == 50
    assert isinstance(result["meets_target"], bool)


def test_order_path_bench_reports_echo_gateway_and_the_targets() -> None:
    result = run_bench("order_path.py", "--quick")
    assert result["mode"] == "quick"
    for path in ("echo", "gateway"):
        assert result[path]["one_in_flight"]["p99_us"] > 0
        assert result[path]["in_flight_64"]["orders_per_s"] > 0
    checks = result["checks"]
    assert checks["denied"] == 0
    assert checks["venue_orders"] == checks["audit_intents"] == checks["expected_each"]
    assert result["targets"]["one_in_flight_p99_us"] == 1_000
    assert set(result["meets_target"]) == {"p50", "p99", "throughput"}


@pytest.fixture(scope="module")
def backtest_result() -> dict[str, Any]:
    return run_bench("backtest.py", "--bars", "3000", "--peer-bars", "3000")


def test_backtest_bench_reports_the_plain_loop_and_the_target(
    backtest_result: dict[str, Any],
) -> None:
    result = backtest_result
    assert result["bars"] == result["data"]["bars"] == 3000
    assert len(result["data"]["sources"]) == 6
    plain = result["plain_loop"]
    assert plain["bars"] == 3000
    assert plain["bars_per_second"] > 0
    assert plain["trades"] > 0
    assert plain["peak_rss_mb"] > 0
    assert result["trades_on_prefix"]["plain_loop"] == plain["trades"]  # the prefix is all bars
    assert result["trades_agree"]["prefix_bars"] == 3000
    assert result["target"]["bars_per_second"] == 500_000
    assert isinstance(result["met"], bool)
    assert "trade_list" not in plain  # the lists are compared, not printed


def test_backtest_bench_backtrader_makes_the_plain_loops_trades(
    backtest_result: dict[str, Any],
) -> None:
    if importlib.util.find_spec("backtrader") is None:
        assert "not installed" in backtest_result["backtrader"]["skipped"]
        pytest.skip("backtrader is not installed (the bench extra: pip install '.[bench]')")
    figures = backtest_result["backtrader"]
    assert figures["bars"] == 3000
    assert figures["bars_per_second"] >= figures["bars_per_second_with_preload"] > 0
    assert figures["peak_rss_mb"] > 0
    assert figures["trades"] == backtest_result["plain_loop"]["trades"]
    assert backtest_result["trades_agree"]["plain_loop_vs_backtrader"] is True


def test_backtest_bench_tradeguard_makes_the_plain_loops_trades(
    backtest_result: dict[str, Any],
) -> None:
    if not (ROOT / "src" / "tradeguard" / "backtest" / "__init__.py").exists():
        assert "skipped" in backtest_result["tradeguard"]
        pytest.skip("src/tradeguard/backtest does not exist yet")
    figures = backtest_result["tradeguard"]
    assert figures["bars_per_second"] > 0
    assert figures["seconds"] > 0
    assert figures["peak_rss_mb"] > 0
    assert figures["trades"] == backtest_result["plain_loop"]["trades"]
    agree = backtest_result["trades_agree"]
    assert agree["plain_loop_vs_tradeguard"] is True
    assert agree["plain_loop_vs_tradeguard_all_bars"] is True


@pytest.mark.parametrize("load", ["python", "wrk"])
def test_api_bench_reports_throughput_beside_bare_and_logins_under_attack(load: str) -> None:
    if load == "wrk" and shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (apt-get install wrk); the python client is tested")
    result = run_bench("api.py", "--quick", env={**os.environ, "TG_BENCH_LOAD": load})
    figures = result["authenticated_get"]
    assert figures["bare_fastapi_rps"] > 0
    assert figures["tradeguard_rps"] > 0
    attack = result["login_under_attack"]
    assert attack["attacker_attempts"] > 0
    assert attack["owner_known_address"]["attempts"] > 0
    assert result["load_generator"] == ("wrk" if load == "wrk" else "python http.client")
