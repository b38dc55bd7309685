"""The account service from the settings: where counters and one-time tokens live (Redis, or
this process and the database), the session key, the breach check and the mailer."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from limits.storage import Storage

from tradeguard.auth.breached import BreachedPasswords
from tradeguard.auth.mail import Mailer, SmtpConfig
from tradeguard.auth.onetime import DbTokens, OneTimeTokens, RedisTokens
from tradeguard.auth.passwords import HashParams
from tradeguard.auth.service import AccountService, AuthConfig
from tradeguard.auth.sessions import Timeouts
from tradeguard.auth.throttle import LoginThrottle, RateLimits, open_storage
from tradeguard.auth.tokens import load_session_key
from tradeguard.config import Settings
from tradeguard.core.clock import Clock
from tradeguard.core.errors import ConfigError
from tradeguard.core.events import EventSink
from tradeguard.store.models import Instance
from tradeguard.vault import Vault

__all__ = ["auth_config", "build_account_service", "instance_prefix"]


def auth_config(settings: Settings) -> AuthConfig:
    try:
        params = HashParams(
            settings.password_memory_kib, settings.password_iterations, settings.password_lanes
        )
    except ValueError as e:
        raise ConfigError(f"TRADEGUARD_PASSWORD_*: {e}") from None
    return AuthConfig(
        access_ttl=settings.access_token_ttl,
        timeouts=Timeouts(
            idle=timedelta(seconds=settings.session_idle_timeout),
            absolute=timedelta(seconds=settings.session_absolute_timeout),
        ),
        hash_params=params,
        min_score=settings.password_min_score,
        public_url=settings.public_url,
        require_2fa=settings.require_2fa,
    )


def instance_prefix(engine: sa.Engine) -> str:
    """Redis keys of this installation (several may share one Redis)."""
    with engine.connect() as conn:
        instance_id = conn.execute(sa.select(Instance.instance_id)).scalar_one()
    return f"tradeguard:{instance_id}"


def _breached(settings: Settings) -> BreachedPasswords | None:
    if settings.breached_check == "off":
        return None
    return BreachedPasswords(
        settings.breached_url, fail_closed=settings.breached_check == "fail-closed"
    )


def _mailer(settings: Settings) -> Mailer | None:
    if settings.smtp_host is None:
        return None
    if not settings.mail_from:
        raise ConfigError("TRADEGUARD_MAIL_FROM: set the sender address for reset mails")
    return Mailer(
        SmtpConfig(
            host=settings.smtp_host,
            port=settings.smtp_port,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=settings.smtp_password,
            sender=settings.mail_from,
        )
    )


def _tokens(settings: Settings, engine: sa.Engine, clock: Clock, prefix: str) -> OneTimeTokens:
    if settings.redis_url is None:
        return DbTokens(engine, clock)
    import redis  # only when configured: most installations never load it

    with settings.redis_url.reveal_text() as url:
        client = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
    return RedisTokens(client, prefix)


def build_account_service(
    settings: Settings,
    engine: sa.Engine,
    *,
    vault: Vault,
    events: EventSink,
    clock: Clock,
    storage: Storage | None = None,
) -> AccountService:
    prefix = instance_prefix(engine)
    storage = storage or open_storage(settings.redis_url, prefix)
    return AccountService(
        engine,
        vault=vault,
        session_key=load_session_key(settings.session_key, settings.data_dir),
        throttle=LoginThrottle(storage, unknown_rate=settings.login_unknown_rate),
        rates=RateLimits(
            storage, per_user=settings.rate_limit_user, everyone=settings.rate_limit_global
        ),
        tokens=_tokens(settings, engine, clock, prefix),
        events=events,
        clock=clock,
        config=auth_config(settings),
        breached=_breached(settings),
        mailer=_mailer(settings),
    )
