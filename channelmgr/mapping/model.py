"""The mappings in force: read-only, swapped as a whole when a valid edit is loaded."""

from __future__ import annotations

import hashlib
import sys
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Iterator

from pydantic import BaseModel

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


class Texts(Mapping):
    """File name -> text, kept zlib-compressed (issue 13: at 10,000 files the texts in force
    were 45 MB of a 300 MB goal; nothing reads them but a reload, a floor problem's position
    and the version recorded in the ledger). Read-only, like the set that holds it.

    Mapping files are written from one pattern (the same keys, room types and rules, other
    codes and ids), so each is compressed against the first one as a preset dictionary: a
    4.4 KB file is 120-170 bytes that way, 1.9 KB alone (18 MB -> 2 MB at 10,000 files)."""

    __slots__ = ("_z", "_zdict")

    def __init__(self, texts: Mapping[str, str] | None = None):
        self._zdict = b""
        self._z: dict[str, bytes] = {}
        for name, text in (texts or {}).items():
            raw = text.encode("utf-8", "surrogatepass")
            if not self._z:
                self._zdict = raw[-32768:]  # zlib's window: a longer dictionary is not used
            c = zlib.compressobj(6, zdict=self._zdict) if self._zdict else zlib.compressobj(6)
            self._z[name] = c.compress(raw) + c.flush()

    def __getitem__(self, name: str) -> str:
        d = zlib.decompressobj(zdict=self._zdict) if self._zdict else zlib.decompressobj()
        return (d.decompress(self._z[name]) + d.flush()).decode("utf-8", "surrogatepass")

    def __iter__(self) -> Iterator[str]:
        return iter(self._z)

    def __len__(self) -> int:
        return len(self._z)

    def __contains__(self, name: object) -> bool:
        return name in self._z

    def __repr__(self) -> str:
        return f"Texts({sorted(self._z)!r})"


@dataclass(frozen=True)
class MappingSet:
    properties: dict[str, PropertyMapping] = field(default_factory=dict)
    fingerprint: str = ""
    # the texts that were validated, by file name: what is recorded as the version in force
    # (a plain dict given here is kept compressed; ``dict(ms.files)`` for a plain one)
    files: Mapping[str, str] = field(default_factory=Texts, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.files, Texts):
            object.__setattr__(self, "files", Texts(self.files))

    @cached_property
    def _by_file(self) -> dict[str, PropertyMapping]:
        return {Path(pm.source).name: pm for pm in self.properties.values()}

    def unchanged(self, path: str, text: str) -> PropertyMapping | None:
        """This set's mapping of the file ``path`` when its text is ``text`` still (by file
        name, like the fingerprint): a reload parses only the files that changed."""
        name = Path(path).name
        pm = self._by_file.get(name)
        if pm is None or name not in self.files or self.files[name] != text:
            return None
        return pm if pm.source == str(path) else PropertyMapping(str(path), pm.file)

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
    named = {Path(path).name: text for path, text in texts.items()}
    return fingerprint_named((name, named[name]) for name in sorted(named))


def fingerprint_named(named: Iterable[tuple[str, str]]) -> str:
    """``fingerprint`` of (file name, text) pairs given in name order, one at a time."""
    h = hashlib.sha256()
    for name, text in named:
        h.update(name.encode() + b"\0" + text.encode() + b"\0")
    return h.hexdigest()[:16]


class Interner:
    """Equal parts of validated mapping files become one shared object (issue 13: 10,000
    parsed files were 22 KB of pydantic models each, most of them the same defaults and the
    same room types, plans and rules in every file; and every string its own copy). The
    models are frozen, so sharing is safe; a part is shared only with one equal in every
    field, type and written form (12.50 and 12.5 stay apart)."""

    def __init__(self) -> None:
        self._seen: dict[Any, Any] = {}
        self._fields_sets: dict[frozenset[str], set[str]] = {}

    def __call__(self, obj: Any) -> Any:
        return self._intern(obj)[0]

    def _intern(self, v: Any) -> tuple[Any, Any]:
        """(the shared object, its key)."""
        t = type(v)
        if t is str:
            v = sys.intern(v)
            return v, (str, v)
        if v is None or t in (bool, int, float):
            return v, (t, v)
        if t is Decimal:
            key = (Decimal, str(v))
        elif t is tuple:
            parts = [self._intern(x) for x in v]
            key = (tuple, tuple(k for _, k in parts))
            v = tuple(x for x, _ in parts)
        elif t is dict:
            items = [(self._intern(k), self._intern(x)) for k, x in v.items()]
            key = (dict, tuple((kk[1], vv[1]) for kk, vv in items))
            v = {kk[0]: vv[0] for kk, vv in items}
        elif isinstance(v, BaseModel) and not v.__pydantic_extra__ and not v.__pydantic_private__:
            d = v.__dict__
            fields = []
            for name in list(d):
                shared, k = self._intern(d[name])
                d[name] = shared  # frozen: the instance's own dict, no __setattr__
                fields.append((name, k))
            fset = frozenset(v.__pydantic_fields_set__)
            key = (t, tuple(fields), fset)
            # the set of fields given, one per model instance (440 bytes each: 60,000 of them,
            # 28 MB, at 10,000 files): equal ones shared. Safe on frozen models: pydantic
            # copies it before adding to it (model_copy), and nothing assigns a field
            object.__setattr__(v, "__pydantic_fields_set__", self._fields_sets.setdefault(fset, set(fset)))
        else:
            return v, ("id", id(v))  # nothing known to share
        try:
            return self._seen.setdefault(key, v), key
        except TypeError:  # pragma: no cover - an unhashable part: keep it as it is
            return v, ("id", id(v))
