"""Trading states and the scopes they apply to.

A scope is the whole platform (`global`), one user (`user:alice`) or one bot (`bot:sma-eth`).
Each scope is `ACTIVE`, `REDUCING` (only orders that shrink a position; cancels pass) or
`HALTED` (no new orders or modifications; cancels pass). What a bot may do is decided by the
strictest of its three scopes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["GLOBAL", "Scope", "ScopeKind", "TradingState", "strictest"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


def strictest(*states: TradingState) -> TradingState:
    return max(states, key=lambda s: s.rank, default=TradingState.ACTIVE)


class ScopeKind(StrEnum):
    GLOBAL = "global"
    USER = "user"
    BOT = "bot"


@dataclass(frozen=True, slots=True)
class Scope:
    """`Scope.bot("sma-eth")`, `Scope.user("alice")`, `GLOBAL`; `str()` is the stored key."""

    kind: ScopeKind
    name: str = ""

    def __post_init__(self) -> None:
        if self.kind is ScopeKind.GLOBAL:
            if self.name:
                raise ValueError("the global scope has no name")
        elif not _NAME.fullmatch(self.name):
            raise ValueError(
                f"a {self.kind} name is 1 to 64 letters, digits, '.', '_' or '-' "
                "(starting with a letter or digit)"
            )

    @classmethod
    def bot(cls, name: str) -> Scope:
        return cls(ScopeKind.BOT, name)

    @classmethod
    def user(cls, name: str) -> Scope:
        return cls(ScopeKind.USER, name)

    @classmethod
    def parse(cls, key: str) -> Scope:
        if key == "global":
            return GLOBAL
        kind, sep, name = key.partition(":")
        if not sep or kind not in ("user", "bot"):
            raise ValueError(f"a scope is 'global', 'user:NAME' or 'bot:NAME', not {key!r}")
        return cls(ScopeKind(kind), name)

    def __str__(self) -> str:
        return "global" if self.kind is ScopeKind.GLOBAL else f"{self.kind}:{self.name}"


GLOBAL = Scope(ScopeKind.GLOBAL)
