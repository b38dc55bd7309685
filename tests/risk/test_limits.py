"""Risk limits as they are loaded: every bad value refused naming its field, contradictions
naming both fields, ceilings of the user and the operator, and the same checks at
`RiskEngine.register_bot`."""

from __future__ import annotations

import tomllib
from decimal import Decimal
from typing import Any

import pytest

from tradeguard.config import load_settings
from tradeguard.core.clock import ManualClock
from tradeguard.core.errors import ConfigError
from tradeguard.core.events import MemorySink
from tradeguard.risk import (
    Breakers,
    Mode,
    OperatorPolicy,
    RiskEngine,
    Scope,
    UserLimits,
    Zone,
    bot_limits_from,
    user_limits_from,
)
from tradeguard.risk.limits import breakers_from, breakers_to_table
from tradeguard.venues.types import Market, MarketKind

D = Decimal
BASE: dict[str, Any] = {"capital": 1000, "symbols": ["ETH/USDT"]}
ETH = Market("ETH/USDT", "ETHUSDT", "ETH", "USDT", MarketKind.SPOT, D("0.01"), D("0.0001"))
ACCOUNT = "paper:alice"


def bot(**raw: Any) -> Any:
    return bot_limits_from({**BASE, **raw})


def new_engine() -> RiskEngine:
    engine = RiskEngine(clock=ManualClock(), events=MemorySink())
    engine.add_account(ACCOUNT, {ETH.symbol: ETH})
    return engine


# -- a real TOML file, end to end --------------------------------------------------------------

BOT_TOML = """
[bot]
name = "sma-eth"

[risk]
capital = 2500.1
symbols = ["ETH/USDT", "BTC/USDT"]
max_order_notional = 250.1
max_position_notional = 500.3
max_gross_exposure = 1000.7
max_open_orders = 4
max_submits_per_minute = 30
price_band_pct = 0.1
leverage = 2
blocked_zones = ["Z5"]
close_positions_on_trip = true
max_consecutive_losses = false
max_daily_loss_pct = 4.5
max_drawdown_pct = "none"
warn_at_pct = 75
"""


def test_a_bot_toml_risk_table_loads_exactly() -> None:
    limits = bot_limits_from(tomllib.loads(BOT_TOML)["risk"])
    assert limits.capital == D("2500.1")
    assert limits.symbols == {"ETH/USDT", "BTC/USDT"}
    # TOML floats go through their shortest repr: 0.1 is Decimal("0.1"), not 0.1000000000000000055
    assert str(limits.price_band_pct) == "0.1"
    assert limits.price_band_pct == D("0.1")
    assert (limits.max_order_notional, limits.max_position_notional) == (D("250.1"), D("500.3"))
    assert limits.max_gross_exposure == D("1000.7")
    assert (limits.max_open_orders, limits.max_submits_per_minute) == (4, 30)
    assert limits.max_modifies_per_minute == 60  # the default
    assert limits.leverage == D(2)
    assert limits.blocked_zones == {Zone.Z5}
    assert limits.close_positions_on_trip is True
    # false and "none" remove a breaker; a number sets it; warn_at_pct is kept
    assert limits.breakers == Breakers(
        max_consecutive_losses=None,
        max_daily_loss_pct=D("4.5"),
        max_drawdown_pct=None,
        warn_at_pct=D(75),
    )


def test_toml_nan_and_inf_are_refused_naming_the_field() -> None:
    raw = tomllib.loads('capital = 1000\nsymbols = ["ETH/USDT"]\nmax_daily_loss_pct = nan\n')
    with pytest.raises(ConfigError, match=r"max_daily_loss_pct must be a positive number"):
        bot_limits_from(raw)
    raw = tomllib.loads('capital = inf\nsymbols = ["ETH/USDT"]\n')
    with pytest.raises(ConfigError, match=r"capital must be a positive number \(got Infinity\)"):
        bot_limits_from(raw)


def test_the_defaults() -> None:
    limits = bot()
    assert limits.breakers == Breakers(3, D(5), D(25), D(80))
    assert limits.blocked_zones == {Zone.Z4, Zone.Z5}
    assert limits.max_order_notional is None
    assert limits.max_open_orders == 10
    assert limits.leverage == 1
    assert limits.close_positions_on_trip is False
    assert user_limits_from({}) == UserLimits(max_portfolio_drawdown_pct=D(40))


# -- refusals naming the field -----------------------------------------------------------------


def test_an_unknown_key_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"unknown setting 'max_daily_los'"):
        bot(max_daily_los=5)
    with pytest.raises(ConfigError, match=r"unknown setting 'max_exposure'"):
        user_limits_from({"max_exposure": 5})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("max_open_orders", "5", "max_open_orders must be a whole number of at least 1"),
        ("max_open_orders", True, "max_open_orders must be a whole number"),
        ("max_open_orders", 0, "max_open_orders must be a whole number of at least 1"),
        ("max_open_orders", -2, "max_open_orders must be a whole number of at least 1"),
        ("max_open_orders", 2.0, "max_open_orders must be a whole number"),
        ("max_submits_per_minute", 0, "max_submits_per_minute must be a whole number"),
        ("max_modifies_per_minute", "none", "max_modifies_per_minute must be a whole number"),
        ("max_consecutive_losses", "3", "max_consecutive_losses must be a whole number"),
        ("max_consecutive_losses", 0, "max_consecutive_losses must be a whole number"),
        ("capital", True, "capital must be a number, not bool"),
        ("capital", "lots", "capital must be a number"),
        ("capital", None, "capital must be a number, not NoneType"),
        ("capital", float("nan"), r"capital must be a positive number \(got NaN\)"),
        ("capital", "NaN", r"capital must be a positive number \(got NaN\)"),
        ("capital", -1, r"capital must be a positive number \(got -1\)"),
        ("capital", 0, r"capital must be a positive number \(got 0\)"),
        ("max_order_notional", True, "max_order_notional must be a number, not bool"),
        ("max_order_notional", -5, "max_order_notional must be a positive number"),
        ("max_gross_exposure", [1], "max_gross_exposure must be a number, not list"),
        ("leverage", 0, "leverage must be a positive number"),
        ("price_band_pct", 0, "price_band_pct must be a positive number"),
        ("price_band_pct", 100.5, "price_band_pct is a percentage; 100.5 is above 100"),
        ("max_daily_loss_pct", 101, "max_daily_loss_pct is a percentage; 101 is above 100"),
        ("max_daily_loss_pct", True, "max_daily_loss_pct must be a number, not bool"),
        ("max_drawdown_pct", 0, "max_drawdown_pct must be a positive number"),
        ("max_drawdown_pct", -25, "max_drawdown_pct must be a positive number"),
        ("warn_at_pct", 0, "warn_at_pct must be a positive number"),
        ("warn_at_pct", 120, "warn_at_pct is a percentage; 120 is above 100"),
        ("blocked_zones", "Z5", "blocked_zones must be a list of zones"),
        ("blocked_zones", ["Z6"], "blocked_zones has 'Z6'"),
        ("close_positions_on_trip", "yes", "close_positions_on_trip must be true or false"),
    ],
)
def test_a_bad_bot_value_is_refused_naming_the_field(name: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        bot(**{name: value})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("max_open_orders", "5", "max_open_orders must be a whole number"),
        ("max_open_orders", False, None),  # false removes it: accepted
        ("max_open_orders", 0, "max_open_orders must be a whole number"),
        ("max_order_notional", True, "max_order_notional must be a number, not bool"),
        ("max_gross_exposure", float("nan"), "max_gross_exposure must be a positive number"),
        ("max_position_notional", -1, "max_position_notional must be a positive number"),
        ("max_portfolio_drawdown_pct", 150, "max_portfolio_drawdown_pct is a percentage"),
        ("max_portfolio_drawdown_pct", 0, "max_portfolio_drawdown_pct must be a positive"),
    ],
)
def test_a_bad_user_value_is_refused_naming_the_field(
    name: str, value: Any, message: str | None
) -> None:
    if message is None:
        assert getattr(user_limits_from({name: value}), name) is None
        return
    with pytest.raises(ConfigError, match=f"^user risk limits: {message}"):
        user_limits_from({name: value})


def test_capital_is_required() -> None:
    with pytest.raises(ConfigError, match="capital is missing"):
        bot_limits_from({"symbols": ["ETH/USDT"]})


@pytest.mark.parametrize("symbols", ["ETH/USDT", None, [1], ["ETH/USDT", None], {"a": 1}])
def test_symbols_must_be_a_list_of_symbols(symbols: Any) -> None:
    with pytest.raises(ConfigError, match="symbols must be a list of market symbols"):
        bot(symbols=symbols)


def test_symbols_may_not_be_empty() -> None:
    with pytest.raises(ConfigError, match="symbols is empty"):
        bot(symbols=[])


# -- contradictions name both fields -----------------------------------------------------------


def test_an_order_limit_above_the_position_limit_is_refused_naming_both() -> None:
    with pytest.raises(ConfigError) as caught:
        bot(max_order_notional=200, max_position_notional=100)
    assert "max_order_notional (200)" in str(caught.value)
    assert "max_position_notional (100)" in str(caught.value)
    bot(max_order_notional=100, max_position_notional=100)  # equal is fine


def test_a_position_limit_above_the_exposure_limit_is_refused_naming_both() -> None:
    with pytest.raises(ConfigError) as caught:
        bot(max_position_notional=500, max_gross_exposure=400)
    assert "max_position_notional (500)" in str(caught.value)
    assert "max_gross_exposure (400)" in str(caught.value)
    bot(max_position_notional=400, max_gross_exposure=400)


def test_a_user_order_ceiling_above_the_position_ceiling_is_refused_naming_both() -> None:
    both = r"max_order_notional \(200\) is above max_position_notional \(100\)"
    with pytest.raises(ConfigError, match=both):
        user_limits_from({"max_order_notional": 200, "max_position_notional": 100})


def test_a_user_position_ceiling_above_the_exposure_ceiling_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"max_position_notional.*max_gross_exposure"):
        user_limits_from({"max_position_notional": 500, "max_gross_exposure": 400})


@pytest.mark.parametrize("warn", [100, 0])
def test_warn_at_pct_is_strictly_between_0_and_100(warn: int) -> None:
    with pytest.raises(ConfigError, match="warn_at_pct"):
        bot(warn_at_pct=warn)
    assert bot(warn_at_pct=99.5).breakers.warn_at_pct == D("99.5")
    assert bot(warn_at_pct=0.5).breakers.warn_at_pct == D("0.5")


@pytest.mark.parametrize(
    "raw",
    [
        {"symbols": []},
        {"max_order_notional": 200, "max_position_notional": 100},
        {"warn_at_pct": 100},
        {"leverage": 500},
    ],
)
def test_every_refusal_names_the_file_it_came_from(raw: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"^bots/sma-eth\.toml \[risk\]: "):
        bot_limits_from({**BASE, **raw}, where="bots/sma-eth.toml [risk]")


# -- removing a breaker ------------------------------------------------------------------------


@pytest.mark.parametrize("off", ["none", False])
def test_none_or_false_removes_a_breaker(off: Any) -> None:
    limits = bot(max_consecutive_losses=off, max_daily_loss_pct=off, max_drawdown_pct=off)
    assert limits.breakers == Breakers(None, None, None, D(80))
    assert user_limits_from({"max_portfolio_drawdown_pct": off}).max_portfolio_drawdown_pct is None
    assert bot(max_order_notional=off).max_order_notional is None


# -- the user's ceilings -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ceiling", "bot_raw", "field"),
    [
        ({"max_order_notional": 100}, {"max_order_notional": 150}, "max_order_notional"),
        ({"max_order_notional": 100}, {}, "max_order_notional"),  # the bot has no limit
        ({"max_position_notional": 300}, {"max_position_notional": 301}, "max_position_notional"),
        ({"max_position_notional": 300}, {}, "max_position_notional"),
        ({"max_open_orders": 5}, {"max_open_orders": 6}, "max_open_orders"),
        ({"max_gross_exposure": 1000}, {"max_gross_exposure": 1000.01}, "max_gross_exposure"),
    ],
)
def test_a_bot_above_its_users_ceiling_is_refused(
    ceiling: dict[str, Any], bot_raw: dict[str, Any], field: str
) -> None:
    user = user_limits_from(ceiling)
    with pytest.raises(ConfigError, match=f"^bot x: {field} is .*above the user's ceiling"):
        user.check_bot(bot(**bot_raw), where="bot x")


def test_a_bot_with_no_limit_is_named_as_such() -> None:
    user = user_limits_from({"max_order_notional": 100})
    with pytest.raises(ConfigError, match="max_order_notional is no limit, above the user's"):
        user.check_bot(bot())


def test_a_bot_within_its_users_ceilings_is_accepted() -> None:
    user = user_limits_from(
        {
            "max_order_notional": 100,
            "max_position_notional": 300,
            "max_open_orders": 5,
            "max_gross_exposure": 1000,
        }
    )
    user.check_bot(
        bot(
            max_order_notional=100,
            max_position_notional=300,
            max_open_orders=5,
            max_gross_exposure=1000,
        )
    )
    # without its own exposure limit a bot is held to the user's at every order: accepted here
    user.check_bot(bot(max_order_notional=100, max_position_notional=300, max_open_orders=5))


def test_the_engine_holds_a_bot_to_its_users_ceiling() -> None:
    engine = new_engine()
    engine.set_user_limits("alice", user_limits_from({"max_order_notional": 100}))
    with pytest.raises(ConfigError, match="bot b1: max_order_notional is 150, above the user"):
        engine.register_bot("b1", user="alice", account=ACCOUNT, limits=bot(max_order_notional=150))
    assert engine.bots() == []
    engine.register_bot("b1", user="alice", account=ACCOUNT, limits=bot(max_order_notional=100))
    # lowering the ceiling under a registered bot is refused too
    with pytest.raises(ConfigError, match="bot b1: max_order_notional is 100, above the user"):
        engine.set_user_limits("alice", user_limits_from({"max_order_notional": 50}))


# -- the operator's floor under live trading ---------------------------------------------------

LOOSER = [
    ("max_consecutive_losses", 4, "set to 4"),
    ("max_consecutive_losses", "none", "removed"),
    ("max_daily_loss_pct", 6, "set to 6"),
    ("max_daily_loss_pct", False, "removed"),
    ("max_drawdown_pct", 30, "set to 30"),
    ("max_drawdown_pct", "none", "removed"),
]


@pytest.mark.parametrize(("name", "value", "shown"), LOOSER)
def test_a_live_bot_may_not_loosen_or_remove_a_breaker(name: str, value: Any, shown: str) -> None:
    with pytest.raises(ConfigError) as caught:
        OperatorPolicy().check_live("b1", bot(**{name: value}), UserLimits())
    assert f"bot b1: {name} is {shown}; a live bot may not go past the operator ceiling" in str(
        caught.value
    )


@pytest.mark.parametrize(("value", "shown"), [(50, "set to 50"), ("none", "removed")])
def test_a_live_bot_needs_its_users_portfolio_breaker(value: Any, shown: str) -> None:
    user = user_limits_from({"max_portfolio_drawdown_pct": value})
    with pytest.raises(ConfigError, match=f"max_portfolio_drawdown_pct is {shown}"):
        OperatorPolicy().check_live("b1", bot(), user)


def test_the_defaults_and_tighter_breakers_may_go_live() -> None:
    policy = OperatorPolicy()
    policy.check_live("b1", bot(), UserLimits())
    tighter = bot(max_consecutive_losses=2, max_daily_loss_pct=2.5, max_drawdown_pct=10)
    policy.check_live("b1", tighter, user_limits_from({"max_portfolio_drawdown_pct": 20}))


def test_an_operator_may_set_a_looser_ceiling() -> None:
    policy = OperatorPolicy(live_breakers=Breakers(max_daily_loss_pct=D(8)))
    policy.check_live("b1", bot(max_daily_loss_pct=8), UserLimits())
    with pytest.raises(ConfigError, match=r"max_daily_loss_pct is set to 8\.5"):
        policy.check_live("b1", bot(max_daily_loss_pct=8.5), UserLimits())


def test_the_operator_ceilings_and_thresholds_come_from_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defaults = OperatorPolicy.from_settings(load_settings(strict=False))
    assert defaults == OperatorPolicy()  # the settings' defaults are the seeds' defaults
    monkeypatch.setenv("TRADEGUARD_RISK_LIVE_MAX_DAILY_LOSS_PCT", "8")
    monkeypatch.setenv("TRADEGUARD_PROMOTION_MIN_TRADES", "250")
    policy = OperatorPolicy.from_settings(load_settings(strict=False))
    assert policy.promotion.min_trades == 250
    policy.check_live("b1", bot(max_daily_loss_pct=8), UserLimits())  # allowed by the operator
    with pytest.raises(ConfigError, match="operator ceiling of 8"):
        policy.check_live("b1", bot(max_daily_loss_pct=9), UserLimits())


@pytest.mark.parametrize(
    "breakers",
    [Breakers(), Breakers(max_consecutive_losses=None, max_daily_loss_pct=D("2.5"))],
    ids=["defaults", "one-removed"],
)
def test_breakers_read_back_exactly_from_their_table(breakers: Breakers) -> None:
    assert breakers_from(breakers_to_table(breakers)) == breakers


@pytest.mark.parametrize(("name", "value", "shown"), LOOSER)
def test_register_bot_live_refuses_a_loosened_breaker_and_paper_takes_it(
    name: str, value: Any, shown: str
) -> None:
    engine = new_engine()
    limits = bot(**{name: value})
    with pytest.raises(ConfigError, match=f"bot b1: {name} is {shown}.*paper bots may"):
        engine.register_bot("b1", user="alice", account=ACCOUNT, limits=limits, mode=Mode.LIVE)
    assert engine.bots() == []
    engine.register_bot("b1", user="alice", account=ACCOUNT, limits=limits, mode=Mode.PAPER)
    assert engine.bots() == ["b1"]


def test_register_bot_live_refuses_a_user_without_a_portfolio_breaker() -> None:
    engine = new_engine()
    engine.set_user_limits("alice", user_limits_from({"max_portfolio_drawdown_pct": "none"}))
    with pytest.raises(ConfigError, match="the user's max_portfolio_drawdown_pct is removed"):
        engine.register_bot("b1", user="alice", account=ACCOUNT, limits=bot(), mode=Mode.LIVE)
    engine.register_bot("b1", user="alice", account=ACCOUNT, limits=bot(), mode=Mode.PAPER)


def test_register_bot_live_with_the_defaults_is_accepted() -> None:
    engine = new_engine()
    engine.register_bot("b1", user="alice", account=ACCOUNT, limits=bot(), mode=Mode.LIVE)
    assert engine.bots() == ["b1"]


def test_a_user_with_a_live_bot_may_not_remove_the_portfolio_breaker_later() -> None:
    engine = new_engine()
    engine.register_bot("b1", user="alice", account=ACCOUNT, limits=bot(), mode=Mode.LIVE)
    with pytest.raises(ConfigError, match="max_portfolio_drawdown_pct"):
        engine.set_user_limits("alice", user_limits_from({"max_portfolio_drawdown_pct": "none"}))


def test_register_bot_refuses_a_symbol_not_on_the_account() -> None:
    engine = new_engine()
    limits = bot(symbols=["ETH/USDT", "DOGE/USDT"])
    with pytest.raises(ConfigError, match="symbol 'DOGE/USDT' is not a market of account"):
        engine.register_bot("b1", user="alice", account=ACCOUNT, limits=limits)
    assert engine.bots() == []
    assert engine.state(Scope.bot("b1")).value == "ACTIVE"


def test_register_bot_refuses_an_unknown_account_and_a_second_registration() -> None:
    engine = new_engine()
    with pytest.raises(ConfigError, match="no account 'paper:bob'"):
        engine.register_bot("b1", user="bob", account="paper:bob", limits=bot())
    engine.register_bot("b1", user="alice", account=ACCOUNT, limits=bot())
    with pytest.raises(ConfigError, match="already registered"):
        engine.register_bot("b1", user="alice", account=ACCOUNT, limits=bot())
