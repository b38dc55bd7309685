"""`tradeguard.sdk`, the name bots import. Its code lives in `tradeguard.bots.sdk`; each bot's
virtualenv gets a copy of that package under this name and nothing else of tradeguard."""

from tradeguard.bots.sdk import *  # noqa: F403
from tradeguard.bots.sdk import __all__ as __all__
