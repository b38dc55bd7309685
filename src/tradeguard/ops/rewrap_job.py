"""The server's background rewrap: after a master-key rotation, `tradeguard serve` moves every
data key and TOTP secret still under an older version to the primary one, while it serves.

It runs the same code as `tradeguard vault rewrap` (batched, compare-and-swap, resumable), so
it is safe beside requests, beside another instance doing the same, and when stopped between
two batches at shutdown.
"""

from __future__ import annotations

import logging
import threading

from tradeguard.vault import Vault, pending_rewrap, rewrap

__all__ = ["BackgroundRewrap"]

log = logging.getLogger(__name__)


class _Stopped(Exception):
    """Raised between batches once `stop()` is asked for."""


class BackgroundRewrap:
    def __init__(self, vault: Vault, *, batch_size: int = 1000) -> None:
        self.vault = vault
        self.batch_size = batch_size
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> int:
        """Start if anything is behind the primary version; how many rows are."""
        pending = pending_rewrap(self.vault)
        if pending:
            log.info(
                "rewrapping %d key(s) to master key version %d in the background",
                pending,
                self.vault.keyring.primary,
            )
            self._thread = threading.Thread(target=self._run, name="tradeguard-rewrap", daemon=True)
            self._thread.start()
        return pending

    def _between_batches(self, _done: int) -> None:
        if self._stopping.is_set():
            raise _Stopped

    def _run(self) -> None:
        try:
            result = rewrap(self.vault, batch_size=self.batch_size, progress=self._between_batches)
        except _Stopped:
            log.info("background rewrap paused for shutdown; the next start resumes it")
            return
        except Exception:
            log.exception("background rewrap stopped; run `tradeguard vault rewrap` to finish")
            return
        if result.failed:
            log.error(
                "background rewrap: %d key(s) would not open (%s); restore them from a backup",
                len(result.failed),
                ", ".join(result.failed),
            )
        log.info(
            "background rewrap done: %d data key(s) and %d second-factor secret(s) now under "
            "master key version %d",
            result.rewrapped,
            result.second_factors,
            result.primary,
        )

    def stop(self, timeout: float = 20.0) -> None:
        """Stop after the batch in hand (each batch commits; the rest resumes next start)."""
        self._stopping.set()
        self.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
