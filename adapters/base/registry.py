"""Adapters are found through the ``channelmgr.adapters`` entry-point group.

A fifth OTA is a package that declares ``[project.entry-points."channelmgr.adapters"]``;
core code never changes to add one.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import entry_points

from adapters.base.contract import ChannelAdapter

GROUP = "channelmgr.adapters"


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available() -> list[str]:
    return sorted(_entry_points())


def load(name: str) -> type[ChannelAdapter]:
    try:
        ep = _entry_points()[name]
    except KeyError:
        raise KeyError(f"no adapter named '{name}' is installed (known: {', '.join(available())})") from None
    cls = ep.load()  # type: ignore[attr-defined]
    if not (isinstance(cls, type) and issubclass(cls, ChannelAdapter)):
        raise TypeError(f"entry point {name} does not name a ChannelAdapter subclass")
    return cls
