"""docs/security.md and docs/asvs.md back each claim with a test; every test they name must
exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.parametrize("name", ["security.md", "asvs.md"])
def test_every_test_named_in_the_security_docs_exists(name: str) -> None:
    doc = (ROOT / "docs" / name).read_text()
    current: Path | None = None
    missing = []
    for m in re.finditer(r"`(tests/[\w/]+\.py)(?:::(\w+))?`|`::(\w+)`", doc):
        path, name, bare = m.groups()
        if path:
            current = ROOT / path
            if not current.exists():
                missing.append(path)
                continue
        name = name or bare
        if name and (current is None or f"def {name}(" not in current.read_text()):
            missing.append(f"{current}::{name}")
    assert missing == []


def test_readme_starts_with_the_two_setup_commands() -> None:
    lines = [x for x in (ROOT / "README.md").read_text().splitlines() if x.strip()]
    commands = [x.split("#")[0].strip() for x in lines[2:4]]
    assert lines[1] == "```sh"
    assert commands == ["make demo", "make test"]
