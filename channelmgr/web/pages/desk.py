"""The reservations desk's page (issue 12): special requests with their time left (red when
overdue), a direct-booking form, the ways out of open overbookings, and the bookings not yet
acknowledged to their OTA. The views call channelmgr.desk exactly as the CLI and API do.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from aiohttp import web

from channelmgr.desk.bookings import DirectBooking
from channelmgr.desk.bookings import Refused as DeskRefused
from channelmgr.ledger.types import LedgerError
from channelmgr.web import queries
from channelmgr.web.pages import Refused, i18n, page, render, require

if TYPE_CHECKING:  # pragma: no cover
    from channelmgr.daemon import Daemon


def _(s: str) -> str:
    return s


KINDS = {"accessible": _("accessible room"), "non_smoking": _("non-smoking"), "high_floor": _("high floor"),
         "extra_bed": _("extra bed"), "cot": _("cot"), "dietary": _("dietary needs"),
         "late_arrival": _("late arrival"), "other": _("other")}
SOURCES = (_("website"), _("phone"), _("walk-in"), _("travel agency"), _("corporate"))  # the default names
STATUS = {"open": _("open"), "answered": _("answered"), "done": _("done"), "withdrawn": _("withdrawn")}


def _tr(table: dict[str, str], code: str | None) -> str:
    return i18n.gettext(table[code]) if code in table else (code or "—")


def _left(seconds: int) -> str:
    s = abs(int(seconds))
    text = i18n.gettext("%(h)d h %(m)02d min") % {"h": s // 3600, "m": (s % 3600) // 60}
    return text if seconds >= 0 else i18n.gettext("%(late)s late") % {"late": text}


async def desk_page(request: web.Request, d: "Daemon", user) -> web.Response:
    desk = d.desk
    overdue_only = request.query.get("overdue") == "1"
    rows = await desk.requests.list(overdue=overdue_only, status="open", reveal=user.sees_guest_data)
    conflicts = await queries.conflicts(d.rt.db, status="open", kind="overbooking", limit=50)
    ways = {}
    for c in conflicts:
        try:
            ways[c["id"]] = await desk.overbooking.ways_out(c["id"])
        except LedgerError:
            ways[c["id"]] = {"upgrades": [], "partners": []}
    unacked = await desk.unacknowledged()
    props = sorted(d.mappings.properties) if d.mappings else []
    pm = d.mappings.get(props[0]) if props else None
    form = {"property": props[0] if props else "", "room_types": sorted(pm.room_types) if pm else [],
            "rate_plans": sorted(pm.rate_plans) if pm else [], "sources": d.config.desk.sources}
    return render(request, "desk_home.html", {
        "requests": rows, "overdue_only": overdue_only, "conflicts": conflicts, "ways": ways, "unacked": unacked,
        "form": form, "properties": props, "KINDS": KINDS, "STATUS": STATUS, "tr": _tr, "left": _left,
        "done": request.query.get("done"), "booked": request.query.get("booked"),
        "may_act": user.may("operator")}, nav="desk")


def _field(f, name: str, *, required: bool = True, limit: int = 500) -> str | None:
    v = f.get(name)
    v = v.strip() if isinstance(v, str) else ""
    if not v:
        if required:
            raise Refused(400, i18n.gettext("Fill in every required field."), name)
        return None
    if len(v) > limit:
        raise Refused(400, i18n.gettext("A field is too long."), name)
    return v


def _day(f, name: str) -> date:
    v = _field(f, name, limit=10)
    try:
        return date.fromisoformat(v)
    except ValueError:
        raise Refused(400, i18n.gettext("A date is written YYYY-MM-DD."), name) from None


async def booking_post(request: web.Request, d: "Daemon", user) -> web.Response:
    require(user, "operator")
    f = await request.post()
    from channelmgr.cli import _property_currency
    from channelmgr.money import to_minor

    prop = _field(f, "property", limit=64)
    amount = _field(f, "amount", required=False, limit=20)
    rooms = _field(f, "rooms", required=False, limit=3) or "1"
    if not rooms.isdigit() or not 1 <= int(rooms) <= 100:
        raise Refused(400, i18n.gettext("Rooms is a whole number from 1 to 100."), "rooms")
    booking = DirectBooking(
        property=prop, room_type=_field(f, "room_type", limit=64), rate_plan=_field(f, "rate_plan", limit=64),
        arrival=_day(f, "arrival"), departure=_day(f, "departure"), rooms=int(rooms),
        guest_name=_field(f, "guest_name", limit=200), phone=_field(f, "phone", limit=40),
        email=_field(f, "email", required=False, limit=254), request=_field(f, "request", required=False),
        source=_field(f, "source", limit=32),
        amount_minor=to_minor(amount, await _property_currency(d.rt, prop)) if amount else None,
        override=f.get("override") == "1")
    try:
        r = await d.desk.direct.add(booking, actor=user.actor)
    except DeskRefused as e:
        raise Refused(409, i18n.gettext("No free room: the booking was not taken."), str(e)) from None
    await d.desk.scan_now(r["id"], "new")
    d.wake_all()
    return web.Response(status=303, headers={"Location": f"/desk?booked={r['confirmation']}"})


async def answer_post(request: web.Request, d: "Daemon", user) -> web.Response:
    require(user, "operator")
    rid = _id(request)
    f = await request.post()
    note = _field(f, "note", limit=2000)
    try:
        await d.desk.requests.answer(rid, note, actor=user.actor)
    except queries.Conflict as e:
        raise Refused(409, i18n.gettext("This request was already answered or closed."), str(e)) from None
    return web.Response(status=303, headers={"Location": f"/desk?done={rid}"})


async def done_post(request: web.Request, d: "Daemon", user) -> web.Response:
    require(user, "operator")
    rid = _id(request)
    try:
        await d.desk.requests.done(rid, actor=user.actor)
    except queries.Conflict as e:
        raise Refused(409, i18n.gettext("This request was already answered or closed."), str(e)) from None
    return web.Response(status=303, headers={"Location": f"/desk?done={rid}"})


async def settle_post(request: web.Request, d: "Daemon", user) -> web.Response:
    require(user, "operator")
    cid = _id(request)
    f = await request.post()
    upgrade = _field(f, "upgrade_to", required=False, limit=64)
    relocate = _field(f, "relocate", required=False, limit=200)
    cancel = f.get("cancel") == "1"
    try:
        await d.desk.overbooking.resolve(cid, actor=user.actor, upgrade_to=upgrade, relocate=relocate, cancel=cancel,
                                         note=_field(f, "note", required=False, limit=2000))
    except queries.Conflict as e:
        raise Refused(409, i18n.gettext("This conflict is already resolved."), str(e)) from None
    d.wake_all()
    return web.Response(status=303, headers={"Location": f"/conflicts?status=all#conflict-{cid}"})


def _id(request: web.Request) -> int:
    v = request.match_info.get("id", "")
    if not v.isdigit() or len(v) > 18:
        raise Refused(404, i18n.gettext("Not found."))
    return int(v)


def add_routes(app: web.Application, daemon: "Daemon") -> None:
    r = app.router
    r.add_get("/desk", page(daemon, desk_page))
    r.add_post("/desk/bookings", page(daemon, booking_post))
    r.add_post("/desk/requests/{id}/answer", page(daemon, answer_post))
    r.add_post("/desk/requests/{id}/done", page(daemon, done_post))
    r.add_post("/desk/conflicts/{id}/settle", page(daemon, settle_post))

