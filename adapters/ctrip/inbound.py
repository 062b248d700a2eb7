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
Parsing runs in a worker thread, so a hostile body never holds up the event loop.
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


def routes(adapter: CtripAdapter, receiver: BookingReceiver) -> list[web.RouteDef]:
    opts = adapter.opts
    max_body = int(adapter.settings.options.get("max_inbound_bytes") or INBOUND_MAX_BYTES)

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
            msg = await asyncio.to_thread(codec.read_inbound, raw)
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
        inbox_id = await receiver.store(adapter.name, raw, msg.kind)
        try:
            read = codec.cancellation if msg.operation == "OTA_CancelRQ" else codec.reservation
            rev = await asyncio.to_thread(read, msg, raw, opts)
        except Exception as e:  # whatever it is, the stored message is failed with the reason
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
        if msg.operation == "OTA_CancelRQ":
            body = codec.cancel_answer(rev.ota_booking_id, conf.confirmation, duplicate=conf.duplicate, **answer)
        else:
            status = codec.STATUS_CANCELLED if conf.status == "cancelled" else codec.STATUS_SUCCESS
            body = codec.res_answer(msg.operation, rev.ota_booking_id, conf.confirmation, status,
                                    duplicate=conf.duplicate, hotel=rev.hotel, **answer)
        return await done(body, msg.soap, "ok")

    return [web.post("", handle), web.post("/", handle)]
