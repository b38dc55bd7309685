"""What every request handler works with: settings, the store, the vault, the audit log, the
account service and the clock. Built once by `web.runtime.open_context`, kept in
`app.state.ctx`, and reached from a route through the `Ctx` dependency (web.deps)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from tradeguard.audit import AuditLog
from tradeguard.auth.service import AccountService
from tradeguard.config import Settings
from tradeguard.core.clock import Clock
from tradeguard.vault import Vault

__all__ = ["AppContext"]


@dataclass
class AppContext:
    settings: Settings
    engine: sa.Engine
    vault: Vault
    audit: AuditLog
    accounts: AccountService
    # Injectable so tests can step time (TOTP codes are single use per 30 s step).
    clock: Clock
