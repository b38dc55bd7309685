"""`tradeguard audit`: verify the log, prove entries and consistency, export, tail, prune, keys.

Proofs and exports go to stdout as JSON (one object, or one line per entry), so they can be piped
and kept; everything meant for a person goes to stderr or a table. An export line is the entry's
canonical JSON: SHA-256 of 0x00 followed by the line's bytes (without the newline) is its leaf
hash, so an auditor can rebuild the tree from an export alone.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from tradeguard.audit import AUDIT_KEY, AuditKeys, load_audit_keys, verify
from tradeguard.audit import tables as audit_tables
from tradeguard.audit.entry import Entry, from_micros, to_micros
from tradeguard.audit.keys import PublicKeys, SignatureChecker
from tradeguard.audit.merkle import ProofError
from tradeguard.audit.proofs import check_proof, consistency, inclusion
from tradeguard.audit.reading import read_entries
from tradeguard.audit.retention import prune
from tradeguard.cli.console import err, out
from tradeguard.cli.inputs import BadInput, parse_time
from tradeguard.cli.settings import cli_settings
from tradeguard.config import Settings
from tradeguard.core.events import EventName
from tradeguard.crypto.keyring_file import init_keyring_file, keyring_file_path, rotate_keyring_file
from tradeguard.ops.audit_log import open_audit_log
from tradeguard.ops.store import open_existing_store, open_store

__all__ = ["app"]

app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
key_app = typer.Typer(help="The audit key that signs tree heads and keys entry MACs.")
app.add_typer(key_app, name="key")


@dataclass(frozen=True)
class _Opened:
    settings: Settings
    engine: sa.Engine
    keys: AuditKeys


@contextmanager
def _opened(*, write: bool = False) -> Iterator[_Opened]:
    """Settings, audit keys (loaded before the store is touched), the store's engine. Commands
    that only read open an existing database read-only and never create or migrate one."""
    settings = cli_settings()
    keys = load_audit_keys(settings)
    engine = open_store(settings).engine if write else open_existing_store(settings)
    try:
        yield _Opened(settings, engine, keys)
    finally:
        engine.dispose()


def _print_json(document: object) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=True) + "\n")


# -- verify ------------------------------------------------------------------------------------


@app.command("verify")
def verify_command(
    against: Annotated[
        Path | None,
        typer.Option(
            "--against",
            help="A checkpoint file kept off this host: prove the log still extends every head "
            "in it (catches a database rolled back to an old backup).",
        ),
    ] = None,
) -> None:
    """Recompute the tree, check every entry, tree head and (with --against) checkpoint."""
    with _opened() as opened:
        with opened.engine.connect() as conn:
            total = int(conn.execute(sa.select(audit_tables.state.c.size)).scalar_one())
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
            # No refresh thread: verify forks worker processes only from a single-threaded
            # process (audit.blocks), so the bar is redrawn as each block is joined instead.
            auto_refresh=False,
        ) as bar:
            task = bar.add_task("verifying", total=total)
            report = verify(
                opened.engine,
                opened.keys,
                against=against,
                progress=lambda done: bar.update(task, completed=done, refresh=True),
            )
    where = f", {report.checkpoints} checkpoint(s) from {against}" if against else ""
    if report.ok:
        pruned = f" (entries below {report.first_seq} pruned)" if report.first_seq else ""
        out.print(
            f"audit log intact: {report.entries} entries{pruned}, {report.heads} signed tree "
            f"head(s){where}; root {report.root.hex()}",
            markup=False,
        )
        return
    first = report.findings[0]
    at = "" if first.seq is None else f" at seq {first.seq}"
    err.print(f"audit log DAMAGED: {first.kind}{at}: {first.message}", style="red", markup=False)
    for other in report.findings[1:]:
        err.print(f"  also: {other.kind}: {other.message}", markup=False)
    raise typer.Exit(1)


# -- proofs ------------------------------------------------------------------------------------


@app.command("prove")
def prove(seq: Annotated[int, typer.Argument(min=0, help="The entry's seq.")]) -> None:
    """Print an inclusion proof (JSON) of one entry in the latest signed tree head."""
    with _opened() as opened:
        _print_json(inclusion(opened.engine, opened.keys, seq))


@app.command("consistency")
def consistency_command(
    old_size: Annotated[int, typer.Argument(min=1, help="The size of the older tree head.")],
) -> None:
    """Print a consistency proof (JSON): the latest signed head extends the tree of OLD_SIZE."""
    with _opened() as opened:
        _print_json(consistency(opened.engine, opened.keys, old_size))


@app.command("check-proof")
def check_proof_command(
    file: Annotated[
        Path,
        typer.Argument(help="A proof from `audit prove` or `audit consistency`; - reads stdin."),
    ],
    public_keys: Annotated[
        Path | None,
        typer.Option(
            "--public-keys",
            help="The published public keys (`audit key public` output): check without the "
            "audit keyring, as an outside auditor.",
        ),
    ] = None,
) -> None:
    """Check a proof offline against the audit key: exit 0 if it holds, 1 if not."""
    keys: SignatureChecker
    if public_keys is None:
        keys = load_audit_keys(cli_settings())
    else:
        cli_settings()
        keys = PublicKeys.parse(_read_json(public_keys, "public keys"), str(public_keys))
    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
    except OSError as e:
        raise BadInput(f"cannot read the proof {file} ({e.strerror})") from None
    except UnicodeDecodeError:
        raise BadInput(
            f"the proof {file} is not UTF-8 text; pass the JSON `audit prove` printed"
        ) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as e:
        raise ProofError(f"the proof is not valid JSON (line {e.lineno}: {e.msg})") from None
    head = check_proof(document, keys)
    extends = (
        f" (it extends the tree of size {document['old_size']} with root "
        f"{document['old_root']}: compare that with the head you kept)"
        if document["kind"] == "consistency"
        else ""
    )
    out.print(
        f"proof holds: {document['kind']} in the tree head of size {head.size} signed "
        f"{from_micros(head.ts).isoformat()} by audit key version {head.key_version}{extends}",
        markup=False,
    )


def _read_json(path: Path, what: str) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise BadInput(f"cannot read the {what} file {path} ({e.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadInput(f"the {what} file {path} is not JSON") from None


# -- reading -----------------------------------------------------------------------------------


@app.command("export")
def export(
    since: Annotated[str | None, typer.Option(help="From this time: 7d, 12h or a date.")] = None,
    until: Annotated[str | None, typer.Option(help="Before this time: 7d, 12h or a date.")] = None,
) -> None:
    """Print entries as JSON lines (canonical: each line's leaf hash is SHA-256(0x00 || line))."""
    now = datetime.now(UTC)
    start = parse_time(since, "--since", now) if since else None
    end = parse_time(until, "--until", now) if until else None
    e = audit_tables.entries
    query = sa.select(e).order_by(e.c.seq)
    if start is not None:
        query = query.where(e.c.ts >= to_micros(start))
    if end is not None:
        query = query.where(e.c.ts < to_micros(end))
    with _opened() as opened, opened.engine.connect() as conn:
        for entry in read_entries(conn, query):
            sys.stdout.write(entry.leaf_data().decode() + "\n")


def _table(entries: list[Entry]) -> Table:
    table = Table("seq", "time (UTC)", "event", "actor", "subject", "details")
    for entry in entries:
        table.add_row(
            str(entry.seq),
            from_micros(entry.ts).strftime("%Y-%m-%d %H:%M:%S"),
            entry.event,
            (entry.actor or "-")[:12],
            entry.subject or "-",
            entry.details,
        )
    return table


@app.command("tail")
def tail(
    lines: Annotated[int, typer.Option("-n", "--lines", min=1, max=10_000)] = 20,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep showing new entries.")
    ] = False,
) -> None:
    """Show the newest entries (actors are keyed hashes, shortened)."""
    e = audit_tables.entries
    with _opened() as opened, opened.engine.connect() as conn:
        newest = list(read_entries(conn, sa.select(e).order_by(e.c.seq.desc()).limit(lines)))
        newest.reverse()
        out.print(_table(newest))
        last = newest[-1].seq if newest else -1
        while follow:
            time.sleep(1.0)
            conn.rollback()  # a fresh snapshot each poll
            fresh = list(read_entries(conn, sa.select(e).where(e.c.seq > last).order_by(e.c.seq)))
            if fresh:
                out.print(_table(fresh))
                last = fresh[-1].seq


# -- writing -----------------------------------------------------------------------------------


@app.command("sign")
def sign() -> None:
    """Sign a tree head now (if entries were added since the last one)."""
    with (
        _opened(write=True) as opened,
        open_audit_log(opened.settings, opened.engine, opened.keys) as log,
    ):
        head = log.sign_head()
    if head is None:
        out.print("no new entries since the last signed tree head", markup=False)
    else:
        out.print(f"signed tree head: size {head.size}, root {head.root.hex()}", markup=False)


@app.command("prune")
def prune_command(
    before: Annotated[str, typer.Option(help="Delete entries older than this: 90d or a date.")],
) -> None:
    """Delete old entries (never newer than the retention minimum), keeping a signed boundary."""
    now = datetime.now(UTC)
    cutoff = parse_time(before, "--before", now)
    with _opened(write=True) as opened:
        result = prune(
            opened.engine,
            opened.keys,
            before=cutoff,
            now=now,
            minimum_days=opened.settings.audit_retention_days,
        )
        with open_audit_log(opened.settings, opened.engine, opened.keys) as log:
            log.append(
                EventName.AUDIT_PRUNED,
                actor="operator",
                details={"first_seq": result.first_seq, "deleted": result.deleted},
            )
    out.print(
        f"pruned {result.deleted} entries; the log now starts at seq {result.first_seq}",
        markup=False,
    )


# -- the key -----------------------------------------------------------------------------------


@key_app.command("init")
def key_init(
    file: Annotated[Path, typer.Option("--file", help="Where to create the keyring (0600).")],
) -> None:
    """Create an audit keyring file with one random key (version 1)."""
    init_keyring_file(file)
    out.print(
        f"Created {file} (0600). Set {AUDIT_KEY.file_variable}={file}; keep a copy off this "
        "host, apart from the master key.",
        markup=False,
    )


@key_app.command("rotate")
def key_rotate() -> None:
    """Add a new primary version to the audit keyring file; older versions stay (needed to
    check what they signed)."""
    cli_settings()
    path = keyring_file_path(AUDIT_KEY)
    version = rotate_keyring_file(path, AUDIT_KEY)
    with (  # the new version signs the entry that records it
        _opened(write=True) as opened,
        open_audit_log(opened.settings, opened.engine, opened.keys) as log,
    ):
        log.append(EventName.AUDIT_KEY_ROTATED, actor="operator", details={"version": version})
    out.print(
        f"Added audit key version {version} to {path} as primary; publish its public key "
        "(`tradeguard audit key public`).",
        markup=False,
    )


@key_app.command("public")
def key_public() -> None:
    """Print the public keys that check tree heads (publish them beside the checkpoints)."""
    keys = load_audit_keys(cli_settings())
    _print_json({str(v): keys.public_key_text(v) for v in keys.versions})
