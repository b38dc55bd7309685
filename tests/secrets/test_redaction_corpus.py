"""Scores `redact_text` against the hand-labelled corpus in tests/data/redaction/.

Each corpus line is a template; `tests.fakes.fill` turns it into a concrete log line with fake
secrets seeded by the line's index, so every run sees the same values and none is stored in the
repository. Three layers of checks:

* one test per line: the redacted output must equal the filled `expected` exactly (the test id
  is the corpus id, so a failure names the line);
* a summary over the whole corpus: recall per kind must be 1.0, negatives must carry no marker
  and no generated secret may survive anywhere; precision / recall is printed (`pytest -s`);
* corpus hygiene: size, per-kind coverage and internal consistency of the labels.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from tests.fakes import Fakes, fill

from tradeguard.secrets.redact import redact_text

CORPUS = Path(__file__).resolve().parents[1] / "data" / "redaction" / "corpus.jsonl"
# Spec precedence order; also the row order of the printed table.
KINDS = (
    "pem_private_key",
    "bearer",
    "basic_auth",
    "jwt",
    "url_password",
    "slack_webhook",
    "slack_token",
    "telegram_token",
    "aws_access_key",
    "hex_key",
    "mnemonic",
    "credential",
)
MARKER = re.compile(r"\[REDACTED:([a-z0-9_]+)\]")
MIN_LINES, MIN_POSITIVES_PER_KIND, MIN_NEGATIVES = 300, 12, 120


@dataclass(frozen=True)
class Case:
    """One corpus line; `index` doubles as the seed so values are stable per line."""

    index: int
    id: str
    label: str
    kinds: tuple[str, ...]
    input: str
    expected: str


@dataclass(frozen=True)
class Run:
    """A case filled with its fake values and passed through the redactor."""

    case: Case
    text: str
    expected: str
    output: str
    secrets: tuple[str, ...]


def load_corpus() -> list[Case]:
    cases = []
    for index, line in enumerate(CORPUS.read_text(encoding="utf-8").splitlines()):
        row = json.loads(line)
        cases.append(
            Case(
                index=index,
                id=row["id"],
                label=row["label"],
                kinds=tuple(row["kinds"]),
                input=row["input"],
                expected=row["expected"],
            )
        )
    return cases


CASES = load_corpus()


@cache
def run(index: int) -> Run:
    """Fill and redact one line; cached so the per-line and summary tests share the work."""
    case = CASES[index]
    # Fresh Fakes per template: values derive from (seed, placeholder text), not call order.
    text, secrets = fill(case.input, Fakes(seed=case.index))
    expected, _ = fill(case.expected, Fakes(seed=case.index))
    return Run(case, text, expected, redact_text(text), tuple(secrets))


def markers(text: str) -> Counter[str]:
    return Counter(MARKER.findall(text))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_line_redacts_exactly_as_expected(case: Case) -> None:
    result = run(case.index)
    assert result.output == result.expected, f"{case.id}: input was {result.text!r}"


def test_redacting_a_redacted_line_changes_nothing() -> None:
    """Records are not marked as redacted (secrets/redact.py), so a second pass must be a no-op."""
    for case in CASES:
        output = run(case.index).output
        assert redact_text(output) == output, case.id


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def score(runs: list[Run]) -> dict[str, Score]:
    """Marker-level confusion counts per kind (a marker of an unknown kind is an FP)."""
    scores: dict[str, Score] = {kind: Score() for kind in KINDS}
    for r in runs:
        want, got = markers(r.expected), markers(r.output)
        for kind in want.keys() | got.keys():
            s = scores.setdefault(kind, Score())
            s.tp += min(want[kind], got[kind])
            s.fp += max(0, got[kind] - want[kind])
            s.fn += max(0, want[kind] - got[kind])
    return scores


def format_table(scores: dict[str, Score]) -> str:
    lines = [f"{'kind':<16} {'TP':>5} {'FP':>4} {'FN':>4} {'precision':>10} {'recall':>7}"]
    total = Score()
    for kind, s in scores.items():
        total.tp, total.fp, total.fn = total.tp + s.tp, total.fp + s.fp, total.fn + s.fn
        lines.append(
            f"{kind:<16} {s.tp:>5} {s.fp:>4} {s.fn:>4} {s.precision:>10.3f} {s.recall:>7.3f}"
        )
    lines.append(
        f"{'ALL':<16} {total.tp:>5} {total.fp:>4} {total.fn:>4} "
        f"{total.precision:>10.3f} {total.recall:>7.3f}"
    )
    return "\n".join(lines)


def leaks(runs: list[Run]) -> list[str]:
    """Corpus ids whose output still contains a generated secret (checked on every line)."""
    return [r.case.id for r in runs if any(secret in r.output for secret in r.secrets)]


def test_corpus_summary_precision_recall() -> None:
    runs = [run(case.index) for case in CASES]
    scores = score(runs)
    print("\nredaction corpus: marker-level precision / recall\n" + format_table(scores))

    missed = {kind: s.fn for kind, s in scores.items() if s.fn}
    negatives_hit = [r.case.id for r in runs if r.case.label == "negative" and markers(r.output)]
    leaked = leaks(runs)
    # One assertion for all three so a single run reports every problem at once.
    problems = [
        f"recall below 1.0, missed markers per kind: {missed}" if missed else "",
        f"markers on negative lines: {negatives_hit}" if negatives_hit else "",
        f"generated secrets survived redaction in: {leaked}" if leaked else "",
    ]
    assert not any(problems), "\n".join(p for p in problems if p)


def test_corpus_size_and_coverage() -> None:
    positives = Counter(kind for case in CASES for kind in case.kinds)
    negatives = sum(case.label == "negative" for case in CASES)
    assert len(CASES) >= MIN_LINES
    assert negatives >= MIN_NEGATIVES
    thin = {kind: positives[kind] for kind in KINDS if positives[kind] < MIN_POSITIVES_PER_KIND}
    assert not thin, f"kinds with fewer than {MIN_POSITIVES_PER_KIND} positive lines: {thin}"


def test_corpus_labels_are_consistent() -> None:
    """Catches hand-editing slips: the label and kinds must agree with the expected markers."""
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), "duplicate corpus ids"
    for case in CASES:
        expected_kinds = tuple(sorted(markers(case.expected), key=KINDS.index))
        assert case.kinds == expected_kinds, case.id
        assert case.label == ("positive" if case.kinds else "negative"), case.id
        if case.label == "negative":
            assert case.expected == case.input, case.id


def test_fill_is_deterministic_and_reports_secrets() -> None:
    template = "k={{hex64}} again={{hex64}} other={{hex64:b}} id={{uuid}} tx={{~hex64:c}}"
    first, secrets = fill(template, Fakes(seed=7))
    second, _ = fill(template, Fakes(seed=7))
    assert first == second
    # Same placeholder text -> same value; labels and negatives stay out of / apart in the list.
    assert len(secrets) == 2
    assert first.count(secrets[0]) == 2
