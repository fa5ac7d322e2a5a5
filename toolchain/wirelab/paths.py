"""Where the files that ship with wirelab live, in a checkout and in a wheel.

A wheel carries `filters/`, `envoy/` and `examples/` under `wirelab/_share/`
(hatchling force-include); an editable install reads them from the checkout.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

_PKG = Path(__file__).resolve().parent


@cache
def share_root() -> Path:
    packaged = _PKG / "_share"
    if (packaged / "filters").is_dir():
        return packaged
    checkout = _PKG.parents[1]
    if (checkout / "filters").is_dir():
        return checkout
    raise RuntimeError(f"wirelab data files are missing: neither {packaged} nor {checkout}/filters")


def filters_dir() -> Path:
    return share_root() / "filters"


def sdk_dir() -> Path:
    return filters_dir() / "sdk"


def protocols_dir() -> Path:
    return filters_dir() / "protocols"


def envoy_templates_dir() -> Path:
    return share_root() / "envoy"


def examples_dir() -> Path:
    return share_root() / "examples"


def cache_dir() -> Path:
    """Per-user cache for build outputs, downloaded sources and compiler state."""
    base = os.environ.get("WIRELAB_CACHE_DIR")
    if base:
        root = Path(base)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg) if xdg else Path.home() / ".cache") / "wirelab"
    root.mkdir(parents=True, exist_ok=True)
    return root
