"""The console's own pages: channels, calendar (+ cell, ARI form), bookings, a booking,
sync log (+ one call), conflicts (+ resolve), mappings. See PAGES_CONTRACT.md for the hooks."""

from __future__ import annotations

import difflib
import re
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from aiohttp import web

from channelmgr import dates
from channelmgr.ledger.types import LedgerError
from channelmgr.web import queries
from channelmgr.web.pages import Refused, _, i18n, page, reads, render, require
from channelmgr.web.pages import date_arg as _date_arg

if TYPE_CHECKING:  # pragma: no cover
    from channelmgr.daemon import Daemon

PAGE_SIZE = 50
SYNC_PAGE = 100

# words for what the backend sends as codes (msgids; translated when rendered)
STATES = {"in_step": _("in step"), "behind": _("behind"), "failing": _("failing"), "disabled": _("disabled")}
BREAKER = {"closed": _("closed (calls go through)"), "open": _("open (calls held back)"),
           "half_open": _("half open (trying one call)"), "disabled": _("disabled")}
BOOKING_STATUS = {"confirmed": _("confirmed"), "cancelled": _("cancelled"), "pending": _("pending")}
ACTIONS = {"new": _("new"), "modify": _("modified"), "cancel": _("cancelled")}
OUTCOMES = {"applied": _("applied"), "duplicate": _("duplicate"), "stale": _("older than the one in force"),
            "superseded": _("superseded"), "ignored": _("ignored"), "failed": _("failed")}
RESULTS = {"ok": _("ok"), "partial": _("partly accepted"), "retry": _("to be retried"), "failed": _("failed"),
           "rejected": _("rejected"), "skipped": _("skipped"), "rate_limited": _("rate limited")}
PUSH_STATUS = {"pending": _("waiting"), "claimed": _("being sent"), "done": _("sent"), "dead": _("dead letter")}
CONFLICT_STATUS = {"open": _("open"), "resolved": _("resolved"), "all": _("all")}
ENTITIES = {"inventory": _("rooms"), "rate": _("price"), "restriction": _("restriction"), "booking": _("booking")}
JOURNAL_ACTIONS = {"set": _("set"), "sold": _("sold count changed")}
DIRECTIONS = {"out": _("to the OTA"), "in": _("from the OTA")}
# conflict kinds: (what happened, what to do)
KINDS: dict[str, tuple[str, str, str]] = {
    "overbooking": (_("Overbooking"), _("An OTA sold more rooms than were free for these nights; the booking was "
                                        "accepted and the room count went below zero."),
                    _("Find the guest a room: upgrade, move or relocate them, then close the nights if needed "
                      "and mark this resolved with what was done.")),
    "unmapped_code": (_("Unmapped code"), _("A booking arrived with a hotel, room or rate code that the mappings "
                                            "do not know; it is kept but not counted in the rooms."),
                      _("Add the code to the mappings (or correct it at the OTA), then check the booking and "
                        "mark this resolved.")),
    "malformed_message": (_("Unreadable message"), _("An OTA sent a message that could not be read; it is kept "
                                                     "as it came."),
                          _("Look at the raw message in the sync log; ask the OTA to send it again if a booking "
                            "is missing.")),
    "impossible_stay": (_("Impossible stay"), _("A booking's dates cannot be applied (too long a stay, or dates "
                                                "out of range); it is kept for a person."),
                        _("Check the dates with the OTA or the guest and enter the stay by hand if it is real.")),
    "drift": (_("Drift"), _("What an OTA holds differs from what the ledger says it should hold."),
              _("A repair push has been queued; if it repeats, check the OTA's extranet and the mappings.")),
    "dead_letter": (_("Dead letter"), _("A push was given up after every retry; the OTA never accepted it."),
                    _("Read the error in the sync log, fix the cause, then push the channel again.")),
    "credentials": (_("Credentials refused"), _("The OTA refused our credentials."),
                    _("Renew the credentials with the OTA and restart the channel.")),
    "price_refused": (_("Price refused"), _("A price was held back because it is under its floor or the OTA "
                                            "refused it."),
                      _("Check the price rules in the mappings and the prices in the ledger.")),
    "ack_deadline": (_("Acknowledgement deadline"), _("A booking was not acknowledged to its OTA in time."),
                     _("Check the channel and acknowledge the booking at the OTA.")),
    "suspicious": (_("Suspicious booking"), _("A booking looks suspicious (flagged by the desk's rules)."),
                   _("Check the booking with the guest or the OTA before the stay.")),
    "reservation": (_("Reservation problem"), _("A reservation could not be handled as it came."),
                    _("Open the booking and check it with the OTA.")),
}


def kind_words(kind: str) -> tuple[str, str, str]:
    return KINDS.get(kind, (kind, _("A conflict of a kind this page does not describe yet."),
                            _("Read its summary and detail, and mark it resolved with what was done.")))


def _tr(table: dict[str, str], code: str | None) -> str:
    if code is None:
        return "—"
    return i18n.gettext(table[code]) if code in table else code


def _words() -> dict[str, Any]:
    return {"tr": _tr, "STATES": STATES, "BREAKER": BREAKER, "BOOKING_STATUS": BOOKING_STATUS, "ACTIONS": ACTIONS,
            "OUTCOMES": OUTCOMES, "RESULTS": RESULTS, "PUSH_STATUS": PUSH_STATUS, "ENTITIES": ENTITIES,
            "JOURNAL_ACTIONS": JOURNAL_ACTIONS, "DIRECTIONS": DIRECTIONS, "kind_words": kind_words,
            "CONFLICT_STATUS": CONFLICT_STATUS}


def _int_arg(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    v = (request.query.get(name) or "").strip()
    if not v:
        return default
    if not v.isdigit() or len(v) > 9:
        raise Refused(400, i18n.gettext("A number was expected."), f"{name}={v[:40]}")
    return max(lo, min(hi, int(v)))


def _channels(d: "Daemon") -> list[str]:
    from channelmgr.config import CHANNEL_NAMES

    return sorted(set(CHANNEL_NAMES) | set(d.channels) | set(d.config.channels))


def _channel_arg(request: web.Request, d: "Daemon") -> str | None:
    ch = (request.query.get("channel") or "").strip() or None
    if ch is not None and ch not in _channels(d):
        raise Refused(400, i18n.gettext("There is no such channel."), ch[:40])
    return ch


# ---- channels -------------------------------------------------------------------------------
def channel_cards(d: "Daemon", st: dict[str, Any], today_counts: dict[str, int], now: datetime) -> list[dict]:
    cards = []
    flush = d.config.sync.flush_interval_seconds
    for c in st["channels"]:
        name = c["channel"]
        ccfg = d.config.channels.get(name)
        interval = ccfg.pull_interval_seconds if ccfg else 20.0
        window = max(3 * interval, 3 * flush, 60.0)  # expected: a success every pull at the latest
        last_ok = i18n._as_dt(c["last_success_at"])
        last_err = i18n._as_dt(c["last_error_at"])
        stale = (now - last_ok).total_seconds() if last_ok else None
        oldest = i18n._as_dt(c["oldest_pending_at"])
        oldest_age = (now - oldest).total_seconds() if oldest else None
        if not c["enabled"]:
            state = "disabled"
        elif c["breaker"] in ("open", "half_open") or (last_err and (last_ok is None or last_err > last_ok)):
            state = "failing"
        elif stale is None or stale > window or (oldest_age is not None and oldest_age > max(30.0, 5 * flush)):
            state = "behind"
        else:
            state = "in_step"
        cards.append({**c, "state": state, "interval": interval, "window": window, "stale": stale,
                      "oldest_age": oldest_age, "red": c["enabled"] and (stale is None or stale > window),
                      "bookings_today": today_counts.get(name, 0)})
    return cards


async def channels_page(request: web.Request, d: "Daemon", user) -> web.Response:
    from channelmgr.ops import status as ops_status

    disabled = [n for n, ch in d.config.channels.items() if not ch.enabled]
    st = await ops_status(d.rt.db, list(d.channels), disabled)
    zone = await reads.display_zone(d.rt.db)
    cards = channel_cards(d, st, await reads.bookings_today(d.rt.db, zone), datetime.now(timezone.utc))
    tpl = "channels_cards.html" if request.headers.get("HX-Request") else "channels.html"
    return render(request, tpl, {"cards": cards, "st": st, "zone": zone, **_words()}, nav="channels")


# ---- calendar -------------------------------------------------------------------------------
async def calendar_page(request: web.Request, d: "Daemon", user) -> web.Response:
    props = await reads.properties(d.rt.db)
    if not props:
        return render(request, "calendar.html", {"props": [], "cal": None, **_words()}, nav="calendar")
    code = (request.query.get("property") or "").strip() or props[0]["code"]
    prop = next((p for p in props if p["code"] == code), None)
    if prop is None:
        raise Refused(404, i18n.gettext("There is no such property."), code[:64])
    start = _date_arg(request, "from") or dates.business_date(datetime.now(timezone.utc), prop["timezone"])
    nights = _int_arg(request, "nights", 31, 1, 62)
    end = start + timedelta(days=nights - 1)
    cal = await queries.calendar(d.rt.ledger, code, start, end)
    pm = d.mappings.get(code) if d.mappings else None
    held: dict[str, dict[tuple[str, str], dict]] = {}
    if pm is not None:
        snap = await d.rt.ledger.snapshot(code, start, end)
        for ch, chrt in sorted(d.channels.items()):
            if pm.channel(ch) is None:
                continue
            try:
                cells = queries.channel_cells(pm, ch, snap, list(dates.days(start, end)), chrt.adapter.capabilities)
            except Exception:  # a channel whose derivation fails does not take the page down
                continue
            per: dict[tuple[str, str], dict] = {}
            for c in cells:
                k = (c["room_type"], c["night"])
                cur = per.setdefault(k, {"rooms": c["rooms_to_sell"], "stop": True})
                if c["rooms_to_sell"] is not None and (cur["rooms"] is None or c["rooms_to_sell"] > cur["rooms"]):
                    cur["rooms"] = c["rooms_to_sell"]
                cur["stop"] = cur["stop"] and bool(c["stop_sell"])
            held[ch] = per
    rt_names = {}
    plans: list[tuple[str, str]] = []
    if pm is not None:
        rt_names = {k: v.name for k, v in pm.room_types.items()}
        plans = [(k, v.room_type, v.name) for k, v in pm.rate_plans.items()]
    night_list = [start + timedelta(days=i) for i in range(nights)]
    prices: dict[tuple[str, str], int] = {}
    for r in cal["rates"]:
        prices.setdefault((r["rate_plan"], r["date"]), r.get("price_minor"))
    return render(request, "calendar.html", {
        "props": props, "prop": prop, "cal": cal, "nights": night_list, "held": held, "rt_names": rt_names,
        "plans": plans, "start": start, "n": nights, "prev": start - timedelta(days=nights),
        "next": start + timedelta(days=nights), "may_set": user.may("revenue"), "today": date.today(),
        "saved": request.query.get("saved"), **_words()}, nav="calendar")


async def cell_page(request: web.Request, d: "Daemon", user) -> web.Response:
    code = (request.query.get("property") or "").strip()
    rt = (request.query.get("room_type") or "").strip()
    night = _date_arg(request, "night")
    if not code or not rt or night is None:
        raise Refused(400, i18n.gettext("A cell is named by its property, room type and night."))
    try:
        got = await reads.cell_detail(d.rt.ledger, code, rt, night)
    except LedgerError as e:
        raise Refused(404, i18n.gettext("There is no such property."), str(e)) from None
    if got is None:
        raise Refused(404, i18n.gettext("There is no such room type."), rt[:64])
    return render(request, "calendar_cell.html", {"code": code, "rt": rt, "night": night, **got, **_words()})


async def ari_post(request: web.Request, d: "Daemon", user) -> web.Response:
    require(user, "revenue")
    from channelmgr.cli import _property_currency
    from channelmgr.ledger.types import AriChange
    from channelmgr.money import MoneyError, to_minor

    f = await request.post()

    def txt(name: str) -> str:
        v = f.get(name)
        return v.strip()[:200] if isinstance(v, str) else ""

    def intval(name: str) -> int | None:
        v = txt(name)
        if not v:
            return None
        if not re.fullmatch(r"\d{1,6}", v):
            raise Refused(400, i18n.gettext("Rooms is a whole number, 0 or more."), f"{name}={v[:20]}")
        return int(v)

    def flag(name: str) -> bool | None:
        v = txt(name)
        return None if v in ("", "keep") else v in ("1", "on", "true", "yes")

    prop, rt, rp = txt("property"), txt("room_type"), txt("rate_plan") or None
    try:
        start, end = date.fromisoformat(txt("from")), date.fromisoformat(txt("to") or txt("from"))
    except ValueError:
        raise Refused(400, i18n.gettext("A date is written YYYY-MM-DD.")) from None
    if end < start or (end - start).days > 730 or not (date(2000, 1, 1) <= start and end <= date(2199, 12, 31)):
        raise Refused(400, i18n.gettext("The range of nights is not valid (at most two years, the end not "
                                        "before the start)."))
    price_minor = None
    if txt("price"):
        if rp is None:
            raise Refused(400, i18n.gettext("A price needs a rate plan."))
        try:
            price_minor = to_minor(txt("price"), await _property_currency(d.rt, prop))
        except (MoneyError, LedgerError) as e:
            raise Refused(400, i18n.gettext("The price is not valid."), str(e)) from None
    stop, closed = flag("stop_sell"), flag("closed")
    rooms = intval("rooms")
    if closed:  # a closed room type: nothing to sell (stop-sell on its plans)
        stop = True
    change = AriChange(property=prop, room_type=rt, rate_plan=rp, start=start, end=end, rooms=rooms,
                       price_minor=price_minor, stop_sell=stop)
    summary = await d.rt.ledger.set_ari(change, actor=user.actor, reason=txt("reason") or "console")
    d.wake_all()
    return web.Response(status=303, headers={"Location": f"/calendar?property={prop}&from={start.isoformat()}"
                                                         f"&nights=31&saved={summary.cells_changed}"})


# ---- bookings -------------------------------------------------------------------------------
async def bookings_page(request: web.Request, d: "Daemon", user) -> web.Response:
    q = (request.query.get("q") or "").strip()[:128]
    status = (request.query.get("status") or "").strip() or None
    if status is not None and status not in BOOKING_STATUS:
        raise Refused(400, i18n.gettext("There is no such status."), status[:40])
    channel = _channel_arg(request, d)
    arrival = _date_arg(request, "arrival")
    pg = _int_arg(request, "page", 1, 1, 100_000)
    kw = dict(reveal=user.sees_guest_data, arrival=arrival, status=status, channel=channel,
              offset=(pg - 1) * PAGE_SIZE, limit=PAGE_SIZE + 1)
    db, cipher = d.rt.db, d.rt.ledger.cipher
    if q:
        rows = await queries.bookings(db, cipher, ota_id=q, **kw)
        if not rows:
            rows = await queries.bookings(db, cipher, confirmation=q, **kw)
    else:
        rows = await queries.bookings(db, cipher, **kw)
    more = len(rows) > PAGE_SIZE
    zones = {p["code"]: p["timezone"] for p in await reads.properties(db)}
    args = {k: v for k, v in (("q", q), ("status", status or ""), ("channel", channel or ""),
                              ("arrival", arrival.isoformat() if arrival else "")) if v}
    return render(request, "bookings.html", {
        "rows": rows[:PAGE_SIZE], "more": more, "page": pg, "q": q, "status": status, "channel": channel,
        "arrival": arrival, "channels": _channels(d), "zones": zones, "args": args, **_words()}, nav="bookings")


async def booking_page(request: web.Request, d: "Daemon", user) -> web.Response:
    try:
        bid = int(request.match_info["id"])
    except ValueError:
        raise Refused(404, i18n.gettext("Not found.")) from None
    b = await queries.booking(d.rt.ledger, bid, reveal=user.sees_guest_data)
    told = await reads.channels_told(d.rt.ledger, bid)
    raw = await reads.raw_messages(d.rt.ledger, bid)
    for r in raw:  # the OTA's own credentials out (Ctrip's MessagePassword...), as in the sync log
        http = getattr(getattr(d.channels.get(r["channel"]), "adapter", None), "http", None)
        if http is not None:
            r["body"] = http.redact(r["body"], limit=64 * 1024)
    zones = {p["code"]: p["timezone"] for p in await reads.properties(d.rt.db)}
    return render(request, "booking.html", {"b": b, "told": told, "raw": raw,
                                            "tz": zones.get(b.get("property") or "", "Asia/Shanghai"),
                                            **_words()}, nav="bookings")


# ---- sync log -------------------------------------------------------------------------------
async def sync_log_page(request: web.Request, d: "Daemon", user) -> web.Response:
    from channelmgr.ops import logs, parse_since

    channel = _channel_arg(request, d)
    prop = (request.query.get("property") or "").strip()[:64] or None
    failed = request.query.get("failed") in ("1", "on", "true")
    since_text = (request.query.get("since") or "").strip()[:40]
    since = None
    if since_text:
        try:
            since = parse_since(since_text)
        except (ValueError, OverflowError):
            raise Refused(400, i18n.gettext("Since is a duration like 10m, 2h or 1d, or a date and time."),
                          since_text) from None
    after = _int_arg(request, "after_id", 0, 0, 10 ** 12)
    rows = await logs(d.rt.db, channel=channel, property=prop, since=since, failed=failed, after_id=after,
                      limit=SYNC_PAGE)
    rows = list(reversed(rows))  # newest first
    last_id = rows[0]["id"] if rows else after
    args = {k: v for k, v in (("channel", channel or ""), ("property", prop or ""), ("failed", "1" if failed else ""),
                              ("since", since_text)) if v}
    ctx = {"rows": rows, "last_id": last_id, "args": args, "channel": channel, "property": prop, "failed": failed,
           "since": since_text, "channels": _channels(d), **_words()}
    if request.headers.get("HX-Request") and after:
        resp = render(request, "sync_rows.html", ctx)
        resp.headers["X-Last-Id"] = str(last_id)
        return resp
    return render(request, "sync_log.html", ctx, nav="sync-log")


async def sync_call_page(request: web.Request, d: "Daemon", user) -> web.Response:
    try:
        rid = int(request.match_info["id"])
    except ValueError:
        raise Refused(404, i18n.gettext("Not found.")) from None
    row = await reads.sync_row(d.rt.db, rid)
    if row is None:
        raise Refused(404, i18n.gettext("Not found."), f"#{rid}")
    return render(request, "sync_call.html", {"r": row, **_words()})


# ---- conflicts ------------------------------------------------------------------------------
async def conflicts_page(request: web.Request, d: "Daemon", user) -> web.Response:
    from channelmgr.ops import status as ops_status

    status = (request.query.get("status") or "open").strip()
    if status not in CONFLICT_STATUS:
        raise Refused(400, i18n.gettext("There is no such status."), status[:40])
    kind = (request.query.get("kind") or "").strip()[:32] or None
    before = _int_arg(request, "before_id", 0, 0, 10 ** 12) or None
    rows = await queries.conflicts(d.rt.db, status=None if status == "all" else status, kind=kind,
                                   before_id=before, limit=PAGE_SIZE)
    st = await ops_status(d.rt.db, [], [])
    zone = await reads.display_zone(d.rt.db)
    return render(request, "conflicts.html", {
        "rows": rows, "status": status, "kind": kind, "open_by_kind": st["conflicts_open"], "zone": zone,
        "may_resolve": user.may("operator"), "done": request.query.get("done"),
        "next_before": rows[-1]["id"] if len(rows) == PAGE_SIZE else None, **_words()}, nav="conflicts")


async def resolve_post(request: web.Request, d: "Daemon", user) -> web.Response:
    require(user, "operator")
    try:
        cid = int(request.match_info["id"])
    except ValueError:
        raise Refused(404, i18n.gettext("Not found.")) from None
    f = await request.post()
    note = f.get("note")
    note = note.strip() if isinstance(note, str) else ""
    if not note:
        raise Refused(400, i18n.gettext("Say in a note what was done about it."))
    if len(note) > 2000:
        raise Refused(400, i18n.gettext("The note is longer than 2,000 characters."))
    try:
        await queries.resolve_conflict(d.rt.db, cid, note, actor=user.actor, resolved_by=user.name)
    except queries.Conflict as e:
        raise Refused(409, i18n.gettext("This conflict is already resolved."), str(e)) from None
    return web.Response(status=303, headers={"Location": f"/conflicts?status=all&done={cid}#conflict-{cid}"})


# ---- mappings -------------------------------------------------------------------------------
PROBLEM_RE = re.compile(r"^(?P<file>[^\n]{1,500}?):(?P<line>\d{1,7}):(?P<col>\d{1,7}): ?(?P<msg>.*)$", re.S)


def _problems(d: "Daemon") -> tuple[list[dict[str, Any]], str | None]:
    """The problems of the last refused edit: the live reload's last result when it refused,
    else those found at start-up; and where they came from."""
    last = getattr(d.reloader, "last", None)
    items: list[Any] = []
    source = None
    if last is not None and not last.ok:
        items, source = list(last.problems) or ([last.error] if last.error else []), "reload"
    elif last is None and d.rt.mapping_errors:
        items, source = list(d.rt.mapping_errors), "start"
    out = []
    for p in items:
        if hasattr(p, "file"):
            out.append({"file": p.file, "line": p.line, "col": p.col, "message": p.message})
            continue
        mt = PROBLEM_RE.match(str(p))
        out.append({"file": mt["file"], "line": int(mt["line"]), "col": int(mt["col"]), "message": mt["msg"]}
                   if mt else {"file": None, "line": None, "col": None, "message": str(p)})
    return out, source


async def mappings_page(request: web.Request, d: "Daemon", user) -> web.Response:
    import asyncio

    from channelmgr.mapping.loader import read_texts

    problems, source = _problems(d)
    info = await queries.mappings(d.rt.ledger, d.mappings.fingerprint if d.mappings else None,
                                  [str(p) for p in problems])
    v = await d.rt.ledger.mapping_in_force()
    folder = d.rt.config.resolve(d.rt.config.mappings_dir)
    texts, _read_problems = await asyncio.to_thread(read_texts, [folder])
    in_force = {k: t for k, t in ((v or {}).get("files") or {}).items()}

    def short(path: str) -> str:
        return path.rsplit("/", 1)[-1]

    now_files = {short(k): t for k, t in texts.items()}
    old_files = {short(k): t for k, t in in_force.items()}
    diff_lines: list[str] = []
    for name in sorted(set(now_files) | set(old_files)):
        a, b = old_files.get(name, ""), now_files.get(name, "")
        if a != b:
            diff_lines.extend(difflib.unified_diff(a.splitlines(), b.splitlines(), f"{name} (in force)",
                                                   f"{name} (on disk)", lineterm="", n=2))
        if len(diff_lines) > 2000:
            diff_lines = diff_lines[:2000] + ["…"]
            break
    pending = bool(diff_lines) and not problems
    return render(request, "mappings.html", {
        "info": info, "v": v, "problems": problems, "source": source, "diff": diff_lines, "pending": pending,
        "files": sorted(old_files), "folder": str(folder), **_words()}, nav="mappings")


def add_routes(app: web.Application, daemon: "Daemon") -> None:
    r = app.router
    r.add_get("/", page(daemon, channels_page))
    r.add_get("/calendar", page(daemon, calendar_page))
    r.add_get("/calendar/cell", page(daemon, cell_page))
    r.add_post("/calendar/ari", page(daemon, ari_post))
    r.add_get("/bookings", page(daemon, bookings_page))
    r.add_get("/bookings/{id}", page(daemon, booking_page))
    r.add_get("/sync-log", page(daemon, sync_log_page))
    r.add_get("/sync-log/{id}", page(daemon, sync_call_page))
    r.add_get("/conflicts", page(daemon, conflicts_page))
    r.add_post("/conflicts/{id}/resolve", page(daemon, resolve_post))
    r.add_get("/mappings", page(daemon, mappings_page))
