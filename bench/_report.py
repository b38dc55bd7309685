"""What every benchmark prints: its figures plus the machine they were measured on, as JSON."""

from __future__ import annotations

import json
import platform
import resource
from typing import Any


def emit(result: dict[str, Any]) -> None:
    result = {
        **result,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(json.dumps(result, indent=2))
