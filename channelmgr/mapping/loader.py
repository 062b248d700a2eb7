"""Reading mappings/*.yaml: every problem, with file:line:col and a plain sentence.

Checks go beyond the shape of the file: a channel mapping that names a room type the hotel
does not have, two local plans mapped to one OTA code, a derived plan whose chain comes
back to itself, a currency the channel cannot take, money with more decimals than its
currency has, the same OTA hotel id in two files.
Nothing half-valid is ever returned: either a whole MappingSet or a YamlFileError.

What an OTA can hold (restrictions, currencies) is what its adapter declares; callers may
pass ``capabilities_for`` (channel name -> Capabilities, or None for an unknown channel)
instead of the installed adapters.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterable

import pydantic

from channelmgr import yamlfile
from channelmgr.mapping.model import Interner, MappingSet, PropertyMapping, fingerprint, fingerprint_named
from channelmgr.mapping.schema import RESTRICTIONS, MappingFile
from channelmgr.money import exponent
from channelmgr.yamlfile import Problem, YamlFileError

CapabilitiesFor = Callable[[str], Any]


class AdapterUnavailable(Exception):
    """The adapter of a known channel is installed but cannot be imported."""


def mapping_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand folders to their *.yaml / *.yml files, sorted; keep files as given.

    Editors' temporary and backup files (.swp, ~, #...#, .#lock) are not mapping files.
    """
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out.extend(sorted(f for f in p.iterdir()
                              if f.suffix in (".yaml", ".yml") and not f.name.startswith((".", "#", "~"))
                              and f.is_file()))
        else:
            out.append(p)
    return out


def registry_capabilities(name: str):
    """The installed adapter's declared limits; None when no adapter of that name exists."""
    from adapters.base.registry import available, load

    if name not in available():
        return None
    try:
        return load(name).capabilities
    except Exception as e:  # an adapter that cannot be imported is not one we can check against
        raise AdapterUnavailable(f"{e.__class__.__name__}: {e}") from None


def read_texts(paths: Iterable[str | Path]) -> tuple[dict[str, str], list[Problem]]:
    """The text of every mapping file under ``paths``, read once (what is read is what is checked)."""
    texts: dict[str, str] = {}
    problems: list[Problem] = []
    for f in mapping_files(paths):
        try:
            texts[str(f)] = f.read_text(encoding="utf-8")
        except FileNotFoundError:
            problems.append(Problem(str(f), 1, 1, "the file does not exist"))
        except IsADirectoryError:
            problems.append(Problem(str(f), 1, 1, "this is a folder, not a mapping file"))
        except UnicodeDecodeError as e:
            problems.append(Problem(str(f), 1, 1, f"the file is not UTF-8 text ({e.reason})"))
    return texts, problems


def fingerprint_paths(paths: Iterable[str | Path]) -> str | None:
    """``fingerprint(read_texts(paths)[0])``, one file in memory at a time; None when a file
    cannot be read, two have one name, or there are none (then read them all to say why).
    Issue 13: a reload that finds the version in force (the watcher's first look, a backstop
    scan) held every text at once to learn that: 85 MB at 10,000 files."""
    files = mapping_files(paths)
    named = {f.name: f for f in files}
    if not files or len(named) != len(files):
        return None
    try:
        return fingerprint_named((name, named[name].read_text(encoding="utf-8")) for name in sorted(named))
    except (OSError, UnicodeDecodeError):
        return None


# ---- one file --------------------------------------------------------------------


def check_file(path: Path | str, text: str | None = None, capabilities_for: CapabilitiesFor | None = None
               ) -> tuple[PropertyMapping | None, list[Problem], Any]:
    """One file: (mapping or None, problems, the parsed tree for positions)."""
    pm, problems, _, tree = check_file_with_warnings(path, text, capabilities_for)
    return pm, problems, tree


def check_file_with_warnings(path: Path | str, text: str | None = None,
                             capabilities_for: CapabilitiesFor | None = None
                             ) -> tuple[PropertyMapping | None, list[Problem], list[Problem], Any]:
    """One file: (mapping or None, problems, warnings, the parsed tree for positions).
    A warning (a price rule that cuts a price by more than half, say) does not refuse the file."""
    path = str(path)
    warnings: list[Problem] = []
    try:
        tree = yamlfile.load(path, text)
    except YamlFileError as e:
        return None, [_explain_indentation(p, text) for p in e.problems], warnings, None
    if not isinstance(tree, dict):
        return None, [Problem(path, 1, 1, "a mapping file is a block of 'key: value' lines "
                                          "starting with 'property:'")], warnings, tree
    caps_for = capabilities_for or registry_capabilities
    try:
        mf = _validate(tree, path)
    except YamlFileError as e:
        # report the rest too: what fits together is checked on the parts that are valid
        parts = _valid_parts(tree)
        return None, sorted(list(e.problems) + _semantic(parts, tree, path, caps_for, warnings),
                            key=lambda p: (p.line, p.col)), warnings, tree
    problems = _semantic(_Parts.of(mf), tree, path, caps_for, warnings)
    return (None if problems else PropertyMapping(path, mf)), problems, warnings, tree


@dataclass
class _Parts:
    """The valid parts of a file, with their index in it (for positions), and the codes of
    broken room types and rate plans, which are declared even if not valid: a reference to
    one is not a second mistake."""

    property: Any
    room_types: list[tuple[int, Any]]
    rate_plans: list[tuple[int, Any]]
    channels: dict[str, Any]
    broken_room_types: dict[str, int] = field(default_factory=dict)  # code -> index in the file
    broken_rate_plans: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, mf: MappingFile) -> _Parts:
        return cls(mf.property, list(enumerate(mf.room_types)), list(enumerate(mf.rate_plans)), dict(mf.channels))

    def codes(self, key: str) -> str:
        """Every room type (or rate plan) code declared, valid or not, in file order."""
        items, broken = ((self.room_types, self.broken_room_types) if key == "room_types"
                         else (self.rate_plans, self.broken_rate_plans))
        ordered = sorted([(i, m.code) for i, m in items] + [(i, code) for code, i in broken.items()])
        return ", ".join(dict.fromkeys(code for _, code in ordered)) or "none"


def _valid_parts(tree: Any) -> _Parts:
    from channelmgr.mapping.schema import (
        ChannelMapping,
        PropertyInfo,
        RatePlan,
        RoomType,
    )

    raw = yamlfile.plain(tree)

    def ok(model, data):
        try:
            return model.model_validate(data)
        except (pydantic.ValidationError, TypeError, ValueError):
            return None

    def items(key, model, broken):
        out = []
        seq = raw.get(key)
        for i, item in enumerate(seq if isinstance(seq, list) else []):
            m = ok(model, item)
            if m is not None:
                out.append((i, m))
            elif isinstance(item, dict) and item.get("code") is not None:
                broken.setdefault(str(item["code"]), i)
        return out

    broken_rt: dict[str, int] = {}
    broken_rp: dict[str, int] = {}
    chans = raw.get("channels") if isinstance(raw.get("channels"), dict) else {}
    return _Parts(ok(PropertyInfo, raw.get("property")), items("room_types", RoomType, broken_rt),
                  items("rate_plans", RatePlan, broken_rp),
                  {n: c for n, c in ((str(n), ok(ChannelMapping, c)) for n, c in chans.items()) if c is not None},
                  broken_rt, broken_rp)


def _explain_indentation(problem: Problem, text: str | None) -> Problem:
    """YAML's own words for a bad indentation ('expected <block end>', or a ':' that is not
    allowed because the line was read as the rest of the value above) become a sentence
    that names the two lines that do not line up."""
    msg = problem.message
    if text is None or not (msg.startswith("the indentation is wrong") or msg.startswith("a ':' appears")):
        return problem
    lines = text.splitlines()
    i = problem.line - 1
    if not 0 <= i < len(lines):
        return problem

    def indent(line: str) -> int:
        return len(line) - len(line.lstrip(" ")) + 1

    j = i - 1
    while j >= 0 and (not lines[j].strip() or lines[j].lstrip().startswith("#")):
        j -= 1
    if j < 0:
        return problem
    col, above = indent(lines[i]), indent(lines[j])
    if msg.startswith("a ':' appears"):
        if col <= above or ":" not in lines[j] or lines[j].rstrip().endswith(":"):
            return problem
        return Problem(problem.file, problem.line, col,
                       f"the indentation is wrong here: this line starts at column {col}, further in than "
                       f"line {j + 1} above (column {above}), so it is read as part of that line's value; "
                       f"line it up with line {j + 1}")
    return Problem(problem.file, problem.line, col,
                   f"the indentation is wrong here: this line starts at column {col} and line {j + 1} above "
                   f"at column {above}; keys of one block start at the same column, and a block under a key "
                   "is indented further than that key")


def _validate(tree: Any, path: str) -> MappingFile:
    """Like yamlfile.validate, but a misspelt key is one problem, not two: 'phisical_rooms is
    not a key here; did you mean physical_rooms' already says that physical_rooms is missing."""
    try:
        return MappingFile.model_validate(yamlfile.plain(tree))
    except pydantic.ValidationError as e:
        errors = e.errors()
    extra = {}
    for err in errors:
        if err["type"] == "extra_forbidden":
            extra.setdefault(tuple(err["loc"][:-1]), []).append(str(err["loc"][-1]))
    problems = []
    for err in errors:
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        if err["type"] == "missing" and difflib.get_close_matches(str(loc[-1]), extra.get(loc[:-1], []), n=1):
            continue
        if err["type"] == "extra_forbidden":
            line, col = yamlfile.key_position(tree, loc)
        else:
            line, col = yamlfile.position(tree, loc)
        problems.append(Problem(path, line, col, yamlfile.sentence(err, MappingFile)))
    raise YamlFileError(problems)


def _suggest(word: str, candidates: list[str]) -> list[str]:
    """The code someone probably meant: same letters in another order or case first
    (BAR-KD -> BAR-DK), then the closest by spelling."""
    for c in candidates:
        if c.lower() == word.lower() or sorted(c.lower()) == sorted(word.lower()):
            return [c]
    return difflib.get_close_matches(word, candidates, n=1)


def _money_problem(value: Decimal, what: str, currency: str) -> str | None:
    exp = exponent(currency)
    scaled = value.scaleb(exp)
    if scaled != scaled.to_integral_value():
        return (f"{what} {value} has more decimals than {currency} has ({exp}); "
                f"prices in {currency} are counted in {'whole units' if exp == 0 else f'{exp} decimals'}")
    return None


def _ending_problem(ending: str, currency: str) -> str | None:
    exp = exponent(currency)
    if exp == 0:
        return f"{currency} prices have no decimals, so they cannot end in {ending}; use 'round' instead"
    if len(ending) - 1 != exp:
        example = "." + "9" * exp
        return f"an ending for {currency} has {exp} decimals, like {example} or .{'0' * exp}, not {ending}"
    return None


def _semantic(parts: _Parts, tree: Any, path: str, capabilities_for: CapabilitiesFor,
              warnings: list[Problem] | None = None) -> list[Problem]:
    problems: list[Problem] = []
    warnings = warnings if warnings is not None else []

    def at(loc: tuple, msg: str, key: bool = False) -> None:
        line, col = (yamlfile.key_position if key else yamlfile.position)(tree, loc)
        problems.append(Problem(path, line, col, msg))

    prop = parts.property
    rts: dict[str, int] = {}
    for i, rt in parts.room_types:
        if rt.code in rts:
            at(("room_types", i, "code"), f"room type '{rt.code}' is declared twice (also item {rts[rt.code] + 1})")
        rts.setdefault(rt.code, i)
    declared_rts = set(rts) | set(parts.broken_room_types)
    for i, rt in parts.room_types:  # the overbooking policy's upgrade ladder (issue 12)
        for j, code in enumerate(rt.overbooking.upgrade_to):
            where = ("room_types", i, "overbooking", "upgrade_to", j)
            if code == rt.code:
                at(where, f"room type '{rt.code}' cannot be upgraded to itself")
            elif code not in declared_rts:
                at(where, f"room type '{rt.code}' is upgraded to '{code}', which this hotel does not have "
                          f"(room types: {parts.codes('room_types')})")
            elif code in rt.overbooking.upgrade_to[:j]:
                at(where, f"room type '{code}' is twice on the upgrade ladder of '{rt.code}'")
    rps: dict[str, int] = {}
    for i, rp in parts.rate_plans:
        if rp.code in rps:
            at(("rate_plans", i, "code"), f"rate plan '{rp.code}' is declared twice")
        rps.setdefault(rp.code, i)
        if rp.room_type not in declared_rts:
            at(("rate_plans", i, "room_type"),
               f"rate plan '{rp.code}' sells room type '{rp.room_type}', which this hotel does not have "
               f"(room types: {parts.codes('room_types')})")
        raw = tree["rate_plans"][i]
        if rp.derived_from is None and isinstance(raw, dict) and "inherit" in raw:
            at(("rate_plans", i, "inherit"),
               f"rate plan '{rp.code}' is not derived from another plan, so it has nothing to inherit: "
               "remove 'inherit' or add 'derived_from'", key=True)
        for j, step in enumerate(rp.steps):
            s = step.step()
            msg = None
            if prop is None:
                break
            if s.kind in ("amount", "round"):
                msg = _money_problem(s.value, f"'{s.kind}'", prop.currency)
            elif s.kind == "ending":
                msg = _ending_problem(step.ending, prop.currency)
            if msg:
                at(("rate_plans", i, "steps", j, s.kind), msg)
    by_code = {rp.code: rp for _, rp in parts.rate_plans}
    declared_rps = set(by_code) | set(parts.broken_rate_plans)
    for i, rp in parts.rate_plans:
        if rp.derived_from is None:
            continue
        if rp.derived_from not in declared_rps:
            close = _suggest(rp.derived_from, list(by_code))
            at(("rate_plans", i, "derived_from"),
               f"rate plan '{rp.code}' is derived from '{rp.derived_from}', which is not a rate plan of this hotel"
               + (f"; did you mean '{close[0]}'?" if close else ""))
            continue
        # follow the chain; only plans *on* a circle are at fault (a plan derived from one is not)
        seen = [rp.code]
        cur = by_code.get(rp.derived_from)
        while cur is not None and cur.code not in seen:
            seen.append(cur.code)
            cur = by_code.get(cur.derived_from) if cur.derived_from else None
        if cur is not None and cur.code == rp.code:
            loop = " -> ".join(seen + [rp.code])
            at(("rate_plans", i, "derived_from"),
               f"rate plan '{rp.code}' is derived in a circle ({loop}): a price cannot come from itself")

    for name, ch in parts.channels.items():
        try:
            caps = capabilities_for(name)
        except AdapterUnavailable as e:
            at(("channels", name), f"the {name} adapter is installed but cannot be loaded ({e}), so this "
                                   "mapping cannot be checked against what the channel accepts", key=True)
            continue
        if caps is None:
            from channelmgr.config import CHANNEL_NAMES

            close = _suggest(name, list(CHANNEL_NAMES))
            at(("channels", name), f"'{name}' is not a channel this installation knows"
                                   + (f"; did you mean '{close[0]}'?" if close
                                      else f" (channels: {', '.join(CHANNEL_NAMES)})"), key=True)
            continue
        for local in ch.rooms:
            if local not in declared_rts:
                at(("channels", name, "rooms", local),
                   f"the {name} mapping names room type '{local}', which this hotel does not have "
                   f"(room types: {parts.codes('room_types')})", key=True)
        seen_ota: dict[str, str] = {}
        for local, ota in ch.rooms.items():
            if ota in seen_ota:
                at(("channels", name, "rooms", local),
                   f"room types '{seen_ota[ota]}' and '{local}' are both mapped to {name} room '{ota}'; "
                   "each OTA room code can stand for one room type only")
            seen_ota.setdefault(ota, local)
        seen_ota = {}
        for local, ota in ch.rates.items():
            if local not in declared_rps:
                at(("channels", name, "rates", local),
                   f"the {name} mapping names rate plan '{local}', which this hotel does not have "
                   f"(rate plans: {parts.codes('rate_plans')})", key=True)
                continue
            if ota in seen_ota:
                at(("channels", name, "rates", local),
                   f"rate plans '{seen_ota[ota]}' and '{local}' are both mapped to {name} rate '{ota}'; "
                   "each OTA rate code can stand for one rate plan only")
            seen_ota.setdefault(ota, local)
            if local not in by_code:
                continue
            rt = by_code[local].room_type
            if rt in rts and rt not in ch.rooms:
                at(("channels", name, "rates", local),
                   f"rate plan '{local}' sells room type '{rt}', which is not mapped for {name} "
                   f"(add it under channels.{name}.rooms)")
        if prop is None:
            continue
        currency = ch.price.currency or prop.currency
        if caps.currencies is not None and currency not in caps.currencies:
            loc = ("channels", name, "price", "currency") if ch.price.currency else ("channels", name)
            at(loc, f"{name} takes prices in {', '.join(sorted(caps.currencies))} only, not {currency}; "
                    "set price.currency and price.rate to convert", key=not ch.price.currency)
        if currency != prop.currency and ch.price.rate is None:
            at(("channels", name, "price"),
               f"{name} prices are in {currency} but the hotel's are in {prop.currency}: give the "
               f"conversion 'rate' (1 {prop.currency} = rate {currency})", key=True)
        if currency == prop.currency and ch.price.rate is not None and ch.price.rate != 1:
            at(("channels", name, "price", "rate"),
               f"a conversion rate is given but {name} prices are in the hotel's own currency {currency}")
        for what in ("amount", "round"):
            v = getattr(ch.price, what)
            msg = _money_problem(v, f"'{what}'", currency) if v is not None else None
            if msg:
                at(("channels", name, "price", what), msg)
        if ch.price.ending is not None:
            msg = _ending_problem(ch.price.ending, currency)
            if msg:
                at(("channels", name, "price", "ending"), msg)
        av = ch.availability
        if not av.closed and av.cap is not None and av.offset >= av.cap:
            at(("channels", name, "availability", "offset"),
               f"a cap of {av.cap} minus an offset of {av.offset} leaves {name} nothing to sell on any night; "
               f"to stop selling on {name} on purpose, write 'closed: true'")
        if caps.inventory_level == "rate" and ch.enabled and not av.closed:
            _closable(name, ch, parts, tree, rts, by_code, at)
    if prop is not None:
        _floors(parts, prop, tree, path, problems, warnings, at)
    return problems


def _closable(name: str, ch: Any, parts: _Parts, tree: Any, rts: dict[str, int], by_code: dict[str, Any],
              at) -> None:
    """On a channel that holds rooms to sell per rate plan (Fliggy), a room type with none
    of its rate plans mapped can never be closed there: after the last room is sold, the
    channel goes on selling it. Every mapped room type needs a mapped rate plan."""
    for local in ch.rooms:
        if local not in rts:
            continue  # another problem says the room type does not exist
        plans = [c for c, rp in by_code.items() if rp.room_type == local]
        if any(c in ch.rates for c in plans):
            continue
        broken = [c for c, i in parts.broken_rate_plans.items() if c in ch.rates
                  and str(yamlfile.plain(tree["rate_plans"][i]).get("room_type")) == local]
        if broken:
            continue  # one of its plans is mapped but broken: that plan's problem says what to fix
        fix = (f"map one of its rate plans ({', '.join(plans)}) under channels.{name}.rates"
               if plans else f"give it a rate plan and map that under channels.{name}.rates")
        at(("channels", name, "rooms", local),
           f"room type '{local}' is mapped on {name} but none of its rate plans is: {name} holds rooms to sell "
           f"on each rate plan, so {local} could never be closed there and would go on selling after the last "
           f"room is sold; {fix}, or remove {local} from channels.{name}.rooms", key=True)


def _floors(parts: _Parts, prop: Any, tree: Any, path: str, problems: list[Problem], warnings: list[Problem],
            at) -> None:
    """min_price written with the right decimals, and the price rules checked against the
    floors without the ledger (channelmgr.mapping.floors)."""
    from channelmgr.mapping.floors import static_findings
    from channelmgr.money import MoneyError

    bad = False
    if prop.min_price is not None:
        msg = _money_problem(prop.min_price, "'min_price'", prop.currency)
        if msg:
            at(("property", "min_price"), msg)
            bad = True
    for i, rp in parts.rate_plans:
        if rp.min_price is not None:
            msg = _money_problem(rp.min_price, "'min_price'", prop.currency)
            if msg:
                at(("rate_plans", i, "min_price"), msg)
                bad = True
    if bad:
        return
    try:
        found = static_findings(prop, parts.rate_plans, parts.channels)
    except MoneyError:
        return  # an amount with too many decimals: its own problem says so
    for f in found.problems:
        at(f.loc, f.message, key=f.key)
    for f in found.warnings:
        line, col = yamlfile.position(tree, f.loc)
        warnings.append(Problem(path, line, col, f"warning: {f.message}"))


# ---- several files ---------------------------------------------------------------


@dataclass
class CheckResult:
    """Every file's mapping (when valid) and every problem found, across files."""

    properties: dict[str, PropertyMapping] = field(default_factory=dict)  # by file
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)  # do not refuse a file; `check` shows them
    texts: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def mapping_set(self) -> MappingSet:
        if self.problems:
            raise YamlFileError(self.problems)
        props = {pm.code: pm for pm in self.properties.values()}
        return MappingSet(props, fingerprint(self.texts), {Path(p).name: t for p, t in self.texts.items()})


# Issue 13: a start parses every file. In worker processes when there are many (and the
# adapters' own capabilities are checked against, which a worker can load itself): the cores
# share the parsing, and the parse trees' garbage never enters the daemon's heap (parsed in
# the daemon, 10,000 files left it hundreds of MB larger than the mappings they made).
POOL_MIN_FILES = 400
POOL_CHUNK = 250


def _check_chunk(items: list[tuple[str, str]]) -> list[tuple[str, PropertyMapping | None, list[Problem],
                                                              list[Problem]]]:
    """In a worker: each file checked alone; no tree goes back (positions are found again on demand)."""
    intern = Interner()
    out = []
    for path, text in items:
        pm, problems, warnings, _ = check_file_with_warnings(path, text, None)
        out.append((path, PropertyMapping(pm.source, intern(pm.file)) if pm is not None else None,
                    problems, warnings))
    return out


def _check_in_workers(todo: list[tuple[str, str]]) -> dict[str, tuple] | None:
    """{path: (pm, problems, warnings)} from a pool of worker processes, or None when a pool
    cannot be had here (then the caller parses in this process)."""
    import concurrent.futures
    import multiprocessing
    import os

    workers = max(1, min(os.cpu_count() or 1, 4, len(todo) // POOL_CHUNK + 1))
    chunks = [todo[i:i + POOL_CHUNK] for i in range(0, len(todo), POOL_CHUNK)]
    try:
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as ex:
            return {path: rest for chunk in ex.map(_check_chunk, chunks) for path, *rest in chunk}
    except Exception:  # no processes allowed, a worker killed: parse here instead
        return None


def check_texts(texts: dict[str, str], capabilities_for: CapabilitiesFor | None = None, *,
                unchanged: MappingSet | None = None) -> CheckResult:
    """Files given as {path shown in messages: text}, checked one by one and together.

    With ``unchanged`` (the set in force), a file whose text is the one that set validated
    is not parsed again: its mapping is taken as it is (issue 13: a reload of 10,000 files
    for one edit parsed all of them); the checks across files are made on every file. Its
    warnings are not given again (``mappings check`` passes no set). Parts equal across
    files are shared (``Interner``); no parsed YAML tree is kept: a position needed for a
    problem across files is found by parsing that one file again."""
    result = CheckResult(texts=dict(texts))
    pooled: dict[str, tuple] = {}
    if capabilities_for in (None, registry_capabilities):
        todo = [(path, text) for path, text in texts.items()
                if unchanged is None or unchanged.unchanged(path, text) is None]
        if len(todo) >= POOL_MIN_FILES:
            pooled = _check_in_workers(todo) or {}
    props: dict[str, str] = {}
    hotels: dict[tuple[str, str], str] = {}
    names: dict[str, str] = {}
    for path, text in texts.items():
        name = Path(path).name
        if name in names:
            result.problems.append(Problem(path, 1, 1, f"another mapping file is also called {name} "
                                                       f"({names[name]}); file names must differ"))
            continue
        names[name] = path
        pm = unchanged.unchanged(path, text) if unchanged is not None else None
        tree: Any = None
        if pm is None:
            if path in pooled:
                pm, file_problems, file_warnings = pooled.pop(path)
            else:
                pm, file_problems, file_warnings, tree = check_file_with_warnings(path, text, capabilities_for)
            result.problems.extend(file_problems)
            result.warnings.extend(file_warnings)
            if pm is None:
                continue
        tree_of = (lambda tree=tree, path=path, text=text: tree if tree is not None else yamlfile.load(path, text))
        if pm.code in props:
            line, col = yamlfile.position(tree_of(), ("property", "code"))
            result.problems.append(Problem(path, line, col, f"property '{pm.code}' is also declared in "
                                                            f"{props[pm.code]}; one file per property"))
            continue
        clash = False
        for ch_name, ch in pm.file.channels.items():
            other = hotels.get((ch_name, ch.hotel_id))
            if other is not None:
                line, col = yamlfile.position(tree_of(), ("channels", ch_name, "hotel_id"))
                result.problems.append(Problem(path, line, col, f"{ch_name} hotel id {ch.hotel_id} is already "
                                                                f"used by property {other}"))
                clash = True
        if clash:
            continue
        for ch_name, ch in pm.file.channels.items():
            hotels[(ch_name, ch.hotel_id)] = pm.code
        props[pm.code] = path
        result.properties[path] = pm
    result.problems.sort(key=lambda p: (p.file, p.line, p.col))
    result.warnings.sort(key=lambda p: (p.file, p.line, p.col))
    return result


def load_texts(texts: dict[str, str], capabilities_for: CapabilitiesFor | None = None, *,
               unchanged: MappingSet | None = None) -> MappingSet:
    """A MappingSet from texts in hand (a recorded version, a preview); YamlFileError lists all problems."""
    return check_texts(texts, capabilities_for, unchanged=unchanged).mapping_set()


def check_paths(paths: Iterable[str | Path] | str | Path,
                capabilities_for: CapabilitiesFor | None = None) -> CheckResult:
    if isinstance(paths, (str, Path)):
        paths = [paths]
    texts, problems = read_texts(paths)
    result = check_texts(texts, capabilities_for)
    result.problems = sorted(problems + result.problems, key=lambda p: (p.file, p.line, p.col))
    return result


def load_mappings(paths: Iterable[str | Path] | str | Path,
                  capabilities_for: CapabilitiesFor | None = None) -> MappingSet:
    """All mapping files, validated together; YamlFileError lists every problem found."""
    return check_paths(paths, capabilities_for).mapping_set()


# ---- what `check` says about a valid file ----------------------------------------


def restriction_notes(pm: PropertyMapping, capabilities_for: CapabilitiesFor | None = None) -> list[str]:
    """Restrictions the mapping wants sent that a channel cannot hold, and what happens instead."""
    capabilities_for = capabilities_for or registry_capabilities
    notes = []
    for name, ch in sorted(pm.channels().items()):
        caps = capabilities_for(name)
        if caps is None:
            continue
        missing = [r for r in RESTRICTIONS if r in ch.restrictions.enabled() and r not in caps.restrictions]
        for r in missing:
            if r == "min_los" and "stop_sell" in caps.restrictions:
                notes.append(f"{name} has no minimum stay: nights with min_los are closed (stop-sell) there")
            else:
                notes.append(f"{name} cannot hold {r}: it is not sent")
    return notes


def summary(path: str, pm: PropertyMapping, capabilities_for: CapabilitiesFor | None = None) -> str:
    derived = sum(1 for p in pm.rate_plans.values() if p.derived_from)
    rooms = sum(r.physical_rooms for r in pm.room_types.values())
    chans = sorted(pm.channels())
    line = (f"{path}: ok: {pm.code} {pm.file.property.name}: {len(pm.room_types)} room types ({rooms} rooms), "
            f"{len(pm.rate_plans)} rate plans ({derived} derived), "
            f"{len(chans)} channel{'s' if len(chans) != 1 else ''} ({', '.join(chans) or 'none'})")
    notes = restriction_notes(pm, capabilities_for)
    return line + ("; " + "; ".join(notes) if notes else "")
