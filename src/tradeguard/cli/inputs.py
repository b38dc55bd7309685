"""Command-line values shared by several commands: times, and the error for a bad value."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from tradeguard.core.errors import TradeguardError

__all__ = ["BadInput", "parse_time"]

_RELATIVE = re.compile(r"([1-9][0-9]{0,5})([dh])")


class BadInput(TradeguardError):
    """A value or file given to a command cannot be used (exit code 2)."""


def parse_time(text: str, option: str, now: datetime) -> datetime:
    """`90d` / `12h` (that long before now) or an ISO date or date-time (UTC if no zone)."""
    relative = _RELATIVE.fullmatch(text.strip())
    if relative:
        amount, unit = int(relative[1]), relative[2]
        return now - (timedelta(days=amount) if unit == "d" else timedelta(hours=amount))
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadInput(
            f"{option} must be a duration such as 90d or 12h, or a date such as 2026-01-31 "
            "(optionally with a time)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
