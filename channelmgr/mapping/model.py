"""The mappings in force: read-only, swapped as a whole when a valid edit is loaded."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from channelmgr.ledger.types import PropertySpec, RatePlanSpec, RoomTypeSpec
from channelmgr.mapping.schema import ChannelMapping, MappingFile, RatePlan, RoomType


@dataclass(frozen=True)
class PropertyMapping:
    source: str  # the file it came from
    file: MappingFile

    @property
    def code(self) -> str:
        return self.file.property.code

    @property
    def timezone(self) -> str:
        return self.file.property.timezone

    @property
    def currency(self) -> str:
        return self.file.property.currency

    @cached_property
    def room_types(self) -> dict[str, RoomType]:
        return {r.code: r for r in self.file.room_types}

    @cached_property
    def rate_plans(self) -> dict[str, RatePlan]:
        return {r.code: r for r in self.file.rate_plans}

    def channels(self) -> dict[str, ChannelMapping]:
        """Channels this property is listed on (enabled ones)."""
        return {name: ch for name, ch in self.file.channels.items() if ch.enabled}

    def channel(self, name: str) -> ChannelMapping | None:
        ch = self.file.channels.get(name)
        return ch if ch is not None and ch.enabled else None

    @cached_property
    def _reverse(self) -> dict[str, tuple[dict[str, str], dict[str, str]]]:
        return {name: ({v: k for k, v in ch.rooms.items()}, {v: k for k, v in ch.rates.items()})
                for name, ch in self.file.channels.items()}

    def local_room(self, channel: str, ota_room: str) -> str | None:
        return self._reverse.get(channel, ({}, {}))[0].get(ota_room)

    def local_rate(self, channel: str, ota_rate: str) -> str | None:
        return self._reverse.get(channel, ({}, {}))[1].get(ota_rate)

    def chain(self, rate_plan: str) -> list[RatePlan]:
        """The plan and its ancestors, the plan first (validated to have no cycle)."""
        out = []
        cur = self.rate_plans.get(rate_plan)
        while cur is not None and cur not in out:
            out.append(cur)
            cur = self.rate_plans.get(cur.derived_from) if cur.derived_from else None
        return out

    def spec(self) -> PropertySpec:
        p = self.file.property
        return PropertySpec(
            code=p.code, name=p.name, timezone=p.timezone, currency=p.currency,
            room_types=tuple(RoomTypeSpec(r.code, r.name, r.physical_rooms) for r in self.file.room_types),
            rate_plans=tuple(RatePlanSpec(r.code, r.name or r.code, r.room_type, r.occupancy, r.meal_plan,
                                          r.derived_from) for r in self.file.rate_plans),
            channels=tuple(sorted(self.channels())),
        )


@dataclass(frozen=True)
class MappingSet:
    properties: dict[str, PropertyMapping] = field(default_factory=dict)
    fingerprint: str = ""
    # the texts that were validated, by file name: what is recorded as the version in force
    files: dict[str, str] = field(default_factory=dict, compare=False)

    def get(self, code: str) -> PropertyMapping | None:
        return self.properties.get(code)

    @cached_property
    def _by_hotel(self) -> dict[tuple[str, str], PropertyMapping]:
        out = {}
        for pm in self.properties.values():
            for name, ch in pm.file.channels.items():
                out[(name, ch.hotel_id)] = pm
        return out

    def by_hotel(self, channel: str, hotel_id: str) -> PropertyMapping | None:
        return self._by_hotel.get((channel, hotel_id))

    def specs(self) -> list[PropertySpec]:
        return [pm.spec() for pm in self.properties.values()]

    def channels_in_use(self) -> set[str]:
        return {name for pm in self.properties.values() for name in pm.channels()}


def fingerprint(texts: dict[str, str]) -> str:
    """Of file names and contents, not folders: the same files read from the mappings folder,
    from a copy, or from the version recorded in the ledger have the same fingerprint."""
    h = hashlib.sha256()
    named = {Path(path).name: text for path, text in texts.items()}
    for name in sorted(named):
        h.update(name.encode() + b"\0" + named[name].encode() + b"\0")
    return h.hexdigest()[:16]
