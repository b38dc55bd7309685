"""The benchmarks run and report what they claim; their figures are read in `make bench`, never
asserted here (timings in tests are noise, not evidence)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_redaction_bench_reports_all_pipelines_and_no_leaks() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "redaction.py"), "--lines", "2000", "--pool", "1000"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result = json.loads(done.stdout)
    for stream in ("representative", "adversarial"):
        figures = result[stream]
        for key in ("plain_lines_per_s", "filter_lines_per_s", "naive_lines_per_s"):
            assert figures[key] > 0
        assert figures["secret_values_in_pool"] > 0
        assert figures["secret_values_leaked_filter"] == 0
    assert result["met"]["no_leaks"] is True
    assert result["peak_rss_mb"] > 0


def test_vault_bench_reports_every_figure_and_checks_the_rewrapped_keys() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "vault.py"), "--users", "200", "--skip-postgres"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result = json.loads(done.stdout)
    assert result["unlock_argon2id"]["unlock_median_ms"] > 0
    assert result["decrypt_field"]["decrypt_median_us"] > 0
    assert result["use_okx_credential"]["fields"] == 3
    assert result["rewrap_sqlite"]["keys"] == 200
    assert result["rewrap_sqlite"]["verified_with_v2_only_keyring"] > 0
    assert "skipped" in result["rewrap_postgresql"]
