"""Named crash points for the tests that kill processes (VUONMINH_CRASH_POINT=name[@n]).

`crash_point("x")` kills the process with SIGKILL the n-th time (default: first) point x is
reached, so a test can stop a service exactly between an effect and its acknowledgement.
Unset, it costs one comparison.
"""

from __future__ import annotations

import os
import signal

from vuonminh.shared.settings import get_settings

_hits: dict[str, int] = {}


def crash_point(name: str) -> None:
    wanted = get_settings().crash_point
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
