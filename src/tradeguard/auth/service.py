"""The account service: every login, session, second-factor and password decision.

Routes ask this service and stay short. Its policy has one shape throughout: throttles first
(no password is hashed for a throttled attempt), then the secret, then a recorded outcome (an
audit event, a throttle hit). Each area lives in its own module (logins, second_factors,
recovery, administration) on a shared core; this class puts them together.
"""

from __future__ import annotations

from tradeguard.auth.administration import SETUP_TTL_S, Administration
from tradeguard.auth.logins import PRINCIPAL_RECHECK_S, TICKET_TTL_S, Logins
from tradeguard.auth.principals import AuthConfig, Enrolment, LoginResult, Principal, StepUp
from tradeguard.auth.recovery import RESET_TTL_S, Recovery
from tradeguard.auth.second_factors import SecondFactors

__all__ = [
    "PRINCIPAL_RECHECK_S",
    "RESET_TTL_S",
    "SETUP_TTL_S",
    "TICKET_TTL_S",
    "AccountService",
    "AuthConfig",
    "Enrolment",
    "LoginResult",
    "Principal",
    "StepUp",
]


class AccountService(Logins, SecondFactors, Recovery, Administration):
    """Logins and sessions, second factors, passwords and administration, on one store."""

    def close(self) -> None:
        """Send the queued reset mails, then let go of the breach check's connections."""
        if self._reset_worker is not None and self._reset_worker.is_alive():
            self._resets.put(None)
            self._reset_worker.join(timeout=15)
        if self.breached is not None:
            self.breached.close()
