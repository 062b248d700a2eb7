"""The desk's routes of the operator API (/api/v1/), in channelmgr.web.api's table and style.

POST /bookings and PATCH /bookings/{id} take an ``Idempotency-Key`` header (1..128 visible
ASCII characters): the first answer is stored with a digest of the body; a retry with the
same key and body gets that answer again (and the booking is made once: the key also fixes
the booking's id, so even two retries racing make one), the same key with another body is a
422 with a sentence.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from aiohttp import web
from sqlalchemy import select

from channelmgr.desk.bookings import Change, DirectBooking, Refused, body_digest
from channelmgr.ledger import models as m
from channelmgr.ledger.ledger import _insert
from channelmgr.web import auth as webauth
from channelmgr.web import models as M
from channelmgr.web.api import Ctx, _BadInput, _dumps, route

HEADER = "Idempotency-Key"


def _desk(c: Ctx):
    return c.daemon.desk


def _key(c: Ctx) -> str | None:
    k = c.request.headers.get(HEADER)
    if k is None:
        return None
    if not 1 <= len(k) <= 128 or any(not (33 <= ord(ch) <= 126) for ch in k):
        raise _BadInput(f"the {HEADER} header is 1 to 128 visible ASCII characters", HEADER)
    return k


async def _stored(c: Ctx, key: str, method: str, digest: str):
    async def q(conn):
        return (await conn.execute(select(m.desk_idempotency).where(m.desk_idempotency.c.key == key))).first()

    row = await c.daemon.rt.db.read(q)
    if row is None:
        return None
    if row.body_sha256 != digest or row.method != method or row.actor != c.user.actor[:64]:
        return webauth.json_error(422, f"the {HEADER} {key!r} was used before for another request; a retry must "
                                       "send the same body (use a new key for a new booking)", HEADER)
    return web.json_response(row.response, status=row.status, dumps=_dumps,
                             headers={"Idempotent-Replayed": "true"})


async def _store(c: Ctx, key: str, method: str, digest: str, status: int, body: dict) -> None:
    async def tx(conn):
        await conn.execute(_insert(conn, m.desk_idempotency).values(
            key=key, actor=c.user.actor[:64], method=method, body_sha256=digest, status=status, response=body,
            created_at=datetime.now(timezone.utc)).on_conflict_do_nothing(index_elements=["key"]))

    await c.daemon.rt.db.write(tx)


async def _minor(c: Ctx, prop: str, text: str | None) -> int | None:
    if text is None:
        return None
    from channelmgr.cli import _property_currency
    from channelmgr.money import MoneyError, to_minor

    try:
        return to_minor(text, await _property_currency(c.daemon.rt, prop))
    except MoneyError as e:
        raise _BadInput(str(e), "amount") from None


def _check_override(c: Ctx, override: bool) -> None:
    if override and not c.user.may("operator"):
        raise _BadInput(f"override needs the operator role; {c.user.name} has {c.user.role}", "override", 403)


async def _idempotent(c: Ctx, method: str, run) -> web.Response:
    key = _key(c)
    digest = body_digest({"path": c.request.path, "body": c.body.model_dump(mode="json")})
    if key is not None:
        replay = await _stored(c, key, method, digest)
        if replay is not None:
            return replay
    try:
        out = M.DirectBookingOut.model_validate(await run(key)).model_dump(mode="json")
        status = 200
    except Refused as e:
        out, status = {"error": str(e), "field": None}, 409
    if key is not None:
        await _store(c, key, method, digest, status, out)
    c.daemon.wake_all()
    return web.json_response(out, status=status, dumps=_dumps)


@route("POST", "/bookings", "Enter a direct booking (website, phone, walk-in, agency, corporate): it takes rooms "
       "and is sent to every OTA; refused (409) with no free room unless override (operator). Send an "
       "Idempotency-Key header so a retry never books twice", role="operator", body_model=M.DirectBookingIn,
       response_model=M.DirectBookingOut, errors=(400, 403, 409, 422), raw=True)
async def booking_add(c: Ctx) -> web.Response:
    b: M.DirectBookingIn = c.body
    _check_override(c, b.override)
    amount = await _minor(c, b.property, b.amount)

    async def run(key):
        import hashlib

        oid = None
        if key is not None:  # the key fixes the booking's id: racing retries are one booking
            oid = "D" + hashlib.sha256(f"{c.user.actor}\0{key}".encode()).hexdigest()[:15].upper()
        d = DirectBooking(property=b.property, room_type=b.room_type, rate_plan=b.rate_plan, arrival=b.arrival,
                          departure=b.departure, rooms=b.rooms, guest_name=b.guest_name, phone=b.phone,
                          email=b.email, request=b.request, source=b.source, amount_minor=amount,
                          override=b.override)
        r = await _desk(c).direct.add(d, actor=c.user.actor, ota_booking_id=oid)
        await _desk(c).scan_now(r["id"], "new")
        return r

    return await _idempotent(c, "POST", run)


@route("PATCH", "/bookings/{id}", "Change or cancel (cancel: true, reason) a direct booking; Idempotency-Key as "
       "for POST", role="operator", path_model=M.BookingRefPath, body_model=M.BookingChangeIn,
       response_model=M.DirectBookingOut, errors=(400, 403, 404, 409, 422), raw=True)
async def booking_change(c: Ctx) -> web.Response:
    b: M.BookingChangeIn = c.body
    _check_override(c, b.override)
    desk = _desk(c)
    bid = await desk.direct.find(c.path.id)
    key = await desk.direct._key(bid)

    async def run(_key):
        if b.cancel:
            if not b.reason:
                raise _BadInput("say why it is cancelled (reason)", "reason")
            r = await desk.direct.cancel(bid, b.reason, actor=c.user.actor)
            await desk.scan_now(bid, "cancel")
            return r
        ch = Change(room_type=b.room_type, rate_plan=b.rate_plan, arrival=b.arrival, departure=b.departure,
                    rooms=b.rooms, guest_name=b.guest_name, phone=b.phone, email=b.email, request=b.request,
                    amount_minor=await _minor(c, key.property, b.amount), override=b.override)
        r = await desk.direct.modify(bid, ch, actor=c.user.actor)
        await desk.scan_now(bid, "modify")
        return r

    return await _idempotent(c, "PATCH", run)


@route("POST", "/bookings/{id}/reveal", "One booking with its guest data in clear (operator), its channels told "
       "and requests; writes an access-audit row (who, when, why)", role="operator", path_model=M.BookingRefPath,
       body_model=M.RevealIn, response_model=M.DeskBookingOut, errors=(400, 403, 404))
async def booking_reveal(c: Ctx) -> dict[str, Any]:
    desk = _desk(c)
    bid = await desk.direct.find(c.path.id)
    return await desk.direct.show(bid, reveal=True, actor=c.user.actor, why=c.body.why, via="api")


@route("GET", "/desk/bookings/{id}", "One booking as the desk sees it (masked): revisions, nights, money, channels "
       "told, requests, conflicts", path_model=M.BookingRefPath, response_model=M.DeskBookingOut, errors=(404,))
async def desk_booking(c: Ctx) -> dict[str, Any]:
    desk = _desk(c)
    return await desk.direct.show(await desk.direct.find(c.path.id), reveal=False)


@route("GET", "/requests", "Guests' special requests with their clocks (time left, overdue)",
       query_model=M.RequestsQuery, response_model=M.RequestsOut, errors=(400,))
async def requests_list(c: Ctx) -> dict[str, Any]:
    q: M.RequestsQuery = c.query
    rows = await _desk(c).requests.list(overdue=q.overdue, status=None if q.status == "all" else q.status,
                                        property=q.property, reveal=c.user.sees_guest_data)
    return {"requests": rows}


@route("POST", "/requests/{id}/answer", "Say what was done about a request (stops its clock)", role="operator",
       path_model=M.RequestPath, body_model=M.AnswerIn, response_model=M.RequestOut, errors=(400, 403, 404, 409))
async def request_answer(c: Ctx) -> dict[str, Any]:
    return await _desk(c).requests.answer(c.path.id, c.body.note, actor=c.user.actor)


@route("POST", "/requests/{id}/done", "Mark a request done", role="operator", path_model=M.RequestPath,
       response_model=M.RequestOut, errors=(403, 404, 409))
async def request_done(c: Ctx) -> dict[str, Any]:
    return await _desk(c).requests.done(c.path.id, actor=c.user.actor)


@route("POST", "/conflicts/{id}/settle", "Settle an overbooking: upgrade_to (the booking's nights move in one "
       "ledger transaction; both room types are sent), relocate to a partner hotel, or cancel", role="operator",
       path_model=M.ConflictPath, body_model=M.SettleIn, response_model=M.ConflictOut, errors=(400, 403, 404, 409))
async def conflict_settle(c: Ctx) -> dict[str, Any]:
    b: M.SettleIn = c.body
    desk = _desk(c)

    async def direct_cancel(bid, reason):
        await desk.direct.cancel(bid, reason, actor=c.user.actor)
        await desk.scan_now(bid, "cancel")

    out = await desk.overbooking.resolve(c.path.id, actor=c.user.actor, upgrade_to=b.upgrade_to, relocate=b.relocate,
                                         cancel=b.cancel, note=b.note, direct_cancel=direct_cancel)
    c.daemon.wake_all()
    return out


@route("GET", "/audit", "Who revealed which booking's guest data, when and why (admin)", role="admin",
       response_model=M.AuditOut)
async def audit(c: Ctx) -> dict[str, Any]:
    return {"rows": await _desk(c).direct.audit(limit=200)}
