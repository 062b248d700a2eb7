"""Where Ctrip pushes to us (mounted by the daemon under /inbound/ctrip/).

One endpoint (``POST /inbound/ctrip`` and ``/inbound/ctrip/``) takes every message, bare
or in a SOAP 1.1 envelope; the answer is wrapped the same way. The message's root says
what it is:

- ``OTA_HotelResRQ`` (new, or ``ResStatus="Modify"``), ``OTA_HotelResModifyRQ``, ``OTA_CancelRQ``:
  1. read it safely (no DOCTYPE/ENTITY); check ``RequestorID @ID @MessagePassword``
     against our credentials; wrong ones are answered ``Error Type="4" Code="497"`` and
     nothing is stored (it is not Ctrip's);
  2. ``receiver.store`` the raw bytes (the inbox) before anything else;
  3. a message naming the booking by Ctrip's id but not the hotel is applied to the
     booking held under that id (``receiver.hotel_of``); without one it is rejected (450);
     a stored message that cannot be read (fields missing, or any other failure reading
     it) is ``receiver.reject``-ed with the reason and answered ``Error Code="450"``, so
     Ctrip keeps it and delivers it again later;
  4. ``receiver.apply`` the revision, and only then answer Success with
     ``ResStatus`` S (C for a cancellation) and ids 501 (Ctrip's) / 502 (ours); a repeat is
     answered the same way plus ``Warning Type="3" Code="127"``. If applying fails (our
     database, say) the answer is ``Error Code="448"`` (system error: retry).
- ``OTA_ReadRQ``: the order's status from ``receiver.lookup``.
- ``OTA_HotelAvailRQ``: ``receiver.rooms_to_sell`` for the stay (Error 322 when not enough).

Nothing is stored before step 1 passes: a body over the size limit (256 KB, option
``max_inbound_bytes``) is answered 413 as soon as the limit is passed, one that is not
readable XML 400, wrong credentials 401; each is counted (``adapter.http.refused``, shown on
/api/status), kept as a 2 KB masked sample and logged as a sync-log row ``rejected``.
Parsing runs in a worker thread when the body is large (over ``INLINE_PARSE_BYTES``), so a
hostile body never holds up the event loop; a small one (every real booking) is read on the
loop, as a thread hop costs more than the parse (issue 13). A booking message is read whole
in that one step (the envelope, the credentials, then the booking itself); it is stored and
applied in one transaction (``receiver.store_and_apply``) when the receiver offers it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import TYPE_CHECKING

import structlog
from aiohttp import web

from adapters.base.contract import BookingReceiver, BookingRevision, Exchange
from adapters.base.errors import ParseError
from adapters.base.http import INBOUND_MAX_BYTES, BodyTooLarge, read_body
from adapters.ctrip import codec
from adapters.ctrip.auth import inbound_allowed

if TYPE_CHECKING:  # pragma: no cover
    from adapters.ctrip.client import CtripAdapter

log = structlog.get_logger("channelmgr.inbound.ctrip")

BOOKING_OPERATIONS = ("OTA_HotelResRQ", "OTA_HotelResModifyRQ", "OTA_CancelRQ")
INLINE_PARSE_BYTES = 32 * 1024  # bodies up to this are parsed on the event loop (well under 1 ms)


def _xml(body: bytes, soap: bool) -> web.Response:
    headers = {"SOAPAction": f'"{codec.SOAP_ACTION}"'} if soap else None
    return web.Response(status=200, body=body, content_type="text/xml", charset="utf-8", headers=headers)


def read_stored(adapter: CtripAdapter, raw: bytes, kind: str) -> BookingRevision:
    """A booking message kept in the inbox, read again (the daemon re-processes at start-up
    what a crash left ``received``); ParseError when it cannot be (or is not Ctrip's)."""
    msg = codec.read_inbound(raw)
    if not inbound_allowed(adapter.settings.credentials, msg.requestor.id, msg.requestor.password):
        raise ParseError("the stored message does not carry our RequestorID and MessagePassword")
    if msg.operation not in BOOKING_OPERATIONS:
        raise ParseError(f"{msg.operation} is not a booking message")
    read = codec.cancellation if msg.operation == "OTA_CancelRQ" else codec.reservation
    return read(msg, raw, adapter.opts)


def _read_all(adapter: CtripAdapter, raw: bytes) -> tuple[codec.Inbound, BookingRevision | None, Exception | None]:
    """The message, and (for a booking message with our credentials) the booking read from
    it, or why it could not be: one step, so that a large body takes one worker thread."""
    msg = codec.read_inbound(raw)
    if msg.operation not in BOOKING_OPERATIONS or not inbound_allowed(
            adapter.settings.credentials, msg.requestor.id, msg.requestor.password):
        return msg, None, None
    read = codec.cancellation if msg.operation == "OTA_CancelRQ" else codec.reservation
    try:
        return msg, read(msg, raw, adapter.opts), None
    except Exception as e:  # noqa: BLE001 - kept with the reason once the message is stored
        return msg, None, e


def routes(adapter: CtripAdapter, receiver: BookingReceiver) -> list[web.RouteDef]:
    opts = adapter.opts
    max_body = int(adapter.settings.options.get("max_inbound_bytes") or INBOUND_MAX_BYTES)
    store_and_apply = getattr(receiver, "store_and_apply", None)  # the engine's; a test's may lack it

    async def handle(request: web.Request) -> web.Response:
        started = time.perf_counter()
        # nothing about the body is trusted until its POS credentials check out: it is read
        # with a cap, parsed off the event loop, and only a cut of it is ever masked
        ex = Exchange(channel=adapter.name, operation="inbound", direction="in")
        raw = b""

        async def done(body: bytes, soap: bool, result: str, error: str | None = None,
                       status: int = 200) -> web.Response:
            resp = _xml(body, soap)
            resp.set_status(status)
            ex.result, ex.status = result, resp.status
            ex.response = adapter.http.redact(body)
            ex.error = adapter.http.redact(error) if error else None
            ex.duration_ms = (time.perf_counter() - started) * 1000
            try:
                await adapter.http.report(ex)
            except Exception:  # the sync log must never fail a booking
                log.exception("could not report a ctrip push to the sync log")
            return resp

        async def refuse(reason: str, detail: str, body: bytes, soap: bool, status: int,
                         operation: str | None = None) -> web.Response:
            """Not Ctrip's (or not readable as anyone's): nothing is stored; counted, sampled."""
            ex.request = adapter.http.sample(raw)
            adapter.http.refused.note(reason, detail=detail, sample=ex.request, operation=operation,
                                      peer=request.remote)
            log.warning("ctrip push refused before storing", reason=reason, detail=detail[:200])
            return await done(body, soap, "rejected", detail, status=status)

        # 1. what is it, and is it Ctrip's? (a bounded read; the parse in a worker thread)
        try:
            raw = await read_body(request, max_body)
        except BodyTooLarge as e:
            return await refuse("too_large", str(e), codec.error_answer(None, codec.CODE_UNABLE, str(e), opts=opts),
                                False, 413)
        try:
            if len(raw) <= INLINE_PARSE_BYTES:
                msg, rev, read_error = _read_all(adapter, raw)
            else:
                msg, rev, read_error = await asyncio.to_thread(_read_all, adapter, raw)
        except Exception as e:  # ParseError, or anything a hostile document provokes
            why = str(e) if isinstance(e, ParseError) else f"{e.__class__.__name__}: {e}"
            soap = b"Envelope" in raw[:512]
            return await refuse("unreadable", why, codec.error_answer(None, codec.CODE_UNABLE,
                                                                      f"message unreadable: {why}", soap=soap,
                                                                      opts=opts), soap, 400)
        ex.operation = msg.operation
        if not inbound_allowed(adapter.settings.credentials, msg.requestor.id, msg.requestor.password):
            return await refuse("not_authenticated", "wrong RequestorID or MessagePassword",
                                codec.error_answer(msg.operation, codec.CODE_AUTH, "authorization failed",
                                                   type_=codec.TYPE_AUTH, soap=msg.soap, echo=msg.echo_token,
                                                   opts=opts), msg.soap, 401, msg.operation)
        ex.request = adapter.http.redact(raw)
        answer = dict(soap=msg.soap, echo=msg.echo_token, opts=opts)

        # queries: nothing to store
        if msg.operation == "OTA_ReadRQ":
            oid = codec.read_request_id(msg)
            conf = await receiver.lookup(adapter.name, oid) if oid else None
            if conf is None:
                return await done(codec.error_answer(msg.operation, codec.CODE_UNABLE,
                                                     f"no order {oid!r} here", **answer), msg.soap, "rejected")
            status = codec.STATUS_CANCELLED if conf.status == "cancelled" else codec.STATUS_SUCCESS
            return await done(codec.read_answer_rs(oid, conf.confirmation, status, **answer), msg.soap, "ok")
        if msg.operation == "OTA_HotelAvailRQ":
            try:
                q = codec.avail_query(msg)
            except ParseError as e:
                return await done(codec.error_answer(msg.operation, codec.CODE_UNABLE, str(e), **answer),
                                  msg.soap, "rejected", str(e))
            ex.hotel = q.hotel
            n = await receiver.rooms_to_sell(adapter.name, q.hotel, q.room, q.rate, q.checkin, q.checkout)
            return await done(codec.avail_answer(q, n, **answer), msg.soap, "ok")
        if msg.operation not in BOOKING_OPERATIONS:
            return await done(codec.error_answer(msg.operation, codec.CODE_UNABLE,
                                                 f"{msg.operation} is not a message this endpoint takes",
                                                 type_=codec.TYPE_UNKNOWN, **answer), msg.soap, "rejected")

        # 2. bookings: the inbox first
        if rev is not None and rev.hotel and store_and_apply is not None:  # stored and applied in one commit
            ex.hotel = rev.hotel
            try:
                _, conf = await store_and_apply(adapter.name, raw, msg.kind, rev)
            except ParseError as e:  # its content cannot be applied (failed with the reason): as unreadable
                return await done(codec.error_answer(msg.operation, codec.CODE_UNABLE,
                                                     f"message not applicable: {e}", **answer),
                                  msg.soap, "rejected", str(e))
            except Exception as e:  # ours, not Ctrip's: answer so that Ctrip delivers it again
                log.exception("ctrip push not stored and applied", ota_booking_id=rev.ota_booking_id)
                return await done(codec.error_answer(msg.operation, codec.CODE_SYSTEM,
                                                     "system error, deliver again later", **answer),
                                  msg.soap, "retry", f"{e.__class__.__name__}: {e}")
            return await done(_booking_answer(msg, rev, conf, answer), msg.soap, "ok")
        inbox_id = await receiver.store(adapter.name, raw, msg.kind)
        if read_error is not None or rev is None:  # whatever it is, the stored message is failed with the reason
            e = read_error or ParseError("the message could not be read")
            why = str(e) if isinstance(e, ParseError) else f"{e.__class__.__name__}: {e}"
            await receiver.reject(inbox_id, f"ctrip {msg.operation}: {why}")
            return await done(codec.error_answer(msg.operation, codec.CODE_UNABLE, f"message unreadable: {why}",
                                                 **answer), msg.soap, "rejected", why)
        if not rev.hotel:  # named by Ctrip's id only: the booking we hold says which hotel
            held = await receiver.hotel_of(adapter.name, rev.ota_booking_id)
            if not held:
                why = (f"{msg.operation} names no hotel (UniqueID Type={codec.UNIQUE_ID_HOTEL} or "
                       f"BasicPropertyInfo/@HotelCode) and no booking {rev.ota_booking_id} is held here")
                await receiver.reject(inbox_id, f"ctrip {msg.operation}: {why}")
                return await done(codec.error_answer(msg.operation, codec.CODE_UNABLE, why, **answer),
                                  msg.soap, "rejected", why)
            rev = dataclasses.replace(rev, hotel=held)
        ex.hotel = rev.hotel
        try:
            conf = await receiver.apply(inbox_id, rev)
        except ParseError as e:  # its content cannot be applied (failed with the reason): as unreadable
            return await done(codec.error_answer(msg.operation, codec.CODE_UNABLE, f"message not applicable: {e}",
                                                 **answer), msg.soap, "rejected", str(e))
        except Exception as e:  # ours, not Ctrip's: answer so that Ctrip delivers it again
            log.exception("ctrip push stored but not applied", inbox_id=inbox_id, ota_booking_id=rev.ota_booking_id)
            return await done(codec.error_answer(msg.operation, codec.CODE_SYSTEM, "system error, deliver again later",
                                                 **answer), msg.soap, "retry", f"{e.__class__.__name__}: {e}")
        return await done(_booking_answer(msg, rev, conf, answer), msg.soap, "ok")

    return [web.post("", handle), web.post("/", handle)]


def _booking_answer(msg: codec.Inbound, rev: BookingRevision, conf, answer: dict) -> bytes:
    if msg.operation == "OTA_CancelRQ":
        return codec.cancel_answer(rev.ota_booking_id, conf.confirmation, duplicate=conf.duplicate, **answer)
    status = codec.STATUS_CANCELLED if conf.status == "cancelled" else codec.STATUS_SUCCESS
    return codec.res_answer(msg.operation, rev.ota_booking_id, conf.confirmation, status,
                            duplicate=conf.duplicate, hotel=rev.hotel, **answer)
