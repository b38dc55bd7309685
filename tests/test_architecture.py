"""The layer order of docs/architecture.md is enforced, not just written down.

`make test` runs `lint-imports`; this test proves the contract it checks would catch a lower
layer importing a higher one, by planting such an import in a copy of the package.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env={"PYTHONPATH": str(tree / "src"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_package_as_it_is_keeps_the_contract(tree: Path) -> None:
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "planted"),
    [
        ("core/errors.py", "import tradeguard.secrets"),
        ("secrets/secret.py", "import tradeguard.store"),
        ("store/url.py", "from tradeguard.config import Settings"),
        ("config.py", "import tradeguard.ops.doctor"),
        ("ops/doctor.py", "import tradeguard.cli.main"),
    ],
)
def test_a_lower_layer_importing_a_higher_one_breaks_the_contract(
    tree: Path, module: str, planted: str
) -> None:
    path = tree / "src" / "tradeguard" / module
    path.write_text(path.read_text() + f"\n{planted}  # planted by the test\n")
    result = _lint(tree)
    assert result.returncode == 1
    assert "Layers follow docs/architecture.md BROKEN" in result.stdout
