"""Every limit the venue precision check can report is a risk reason code: the engine turns a
`Breach` into a `Reason` by value, so a new breach without its reason would raise mid-check."""

from tradeguard.risk import Reason
from tradeguard.venues.precision import Breach


def test_every_breach_is_a_reason() -> None:
    assert {b.value for b in Breach} <= {r.value for r in Reason}
