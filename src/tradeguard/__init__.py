"""tradeguard: a self-hosted, non-custodial platform for running automated trading bots."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tradeguard")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
