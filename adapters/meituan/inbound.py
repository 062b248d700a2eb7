"""Where Meituan pushes order notices to us (mounted by the daemon under /inbound/meituan/).

For every notice, in this order (DESIGN.md invariants 2 and 3):

1. check the MWS signature, the Date skew and the PartnerId; a notice that fails is
   answered with an auth error code and nothing is stored (it is not Meituan's);
2. read it (on the event loop when small; a large body in a worker thread); a readable
   notice that names its hotel is stored and applied in one transaction
   (``receiver.store_and_apply``: the raw bytes are in the inbox, committed with the
   revision, before anything is answered; issue 13); otherwise ``receiver.store`` the raw
   bytes (the inbox) first;
3. an unreadable notice is ``receiver.reject``-ed with the reason and answered
   with a non-zero code, so Meituan keeps it and delivers it again later;
4. ``receiver.apply`` the revision, and only then answer code 0 with our confirmation
   number (a duplicate is answered the same way: delivery is idempotent by revision).
   If applying fails (our database, say) the answer is a retriable error code (HTTP 503).

Before step 1 the body is read with a cap (256 KB, option ``max_inbound_bytes``; 413 as
soon as it is passed). Refused notices (too large, not signed, a replayed signature) are
not stored: each is counted (``adapter.http.refused``, on /api/status), kept as a 2 KB
masked sample and logged as a sync-log row ``rejected``. What the signature covers is said
in adapters/meituan/auth.py: ``METHOD path`` and ``Date``, not the body, so a signature is
accepted for one body only (the replay cache). Two notices to one path in the same second
carry the same headers: the second (signed, but its headers already used) is not refused
but confirmed, its body untrusted: the order it names is read from Meituan
(``query_order``, our own signed call) and that answer is stored and applied instead; an
order Meituan does not hold is refused as a replay. Refusing it outright capped intake at
one notice a second per path (scripts/bench_fanout.py: a backlog behind 2.5 Meituan
bookings/s, 30 s misses). At most ``REPLAY_CONFIRM_LIMIT`` (option
``replay_confirm_limit``) confirmations per set of headers. Parsing runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

import structlog
from aiohttp import web

from adapters.base.contract import BookingReceiver, BookingRevision, Exchange
from adapters.base.errors import ParseError
from adapters.base.http import INBOUND_MAX_BYTES, BodyTooLarge, read_body
from adapters.meituan import codec

if TYPE_CHECKING:  # pragma: no cover
    from adapters.meituan.client import MeituanAdapter

log = structlog.get_logger("channelmgr.inbound.meituan")

REPLAY_CONFIRM_LIMIT = 20  # notices one set of signed headers may have confirmed by an order query


def _reply(code: int, message: str, data=None, status: int = 200) -> web.Response:
    return web.Response(status=status, body=codec.answer(code, message, data), content_type="application/json",
                        charset="utf-8")


def read_stored(adapter: "MeituanAdapter", raw: bytes, kind: str) -> BookingRevision:
    """A notice kept in the inbox, read again (the daemon re-processes at start-up what a
    crash left ``received``); its action comes from the kind it was stored as."""
    action = {k: a for a, k in codec.KIND.items()}.get(kind)
    if action is None:
        raise ParseError(f"a stored notice of kind {kind!r} cannot be read again")
    partner, body = codec.notice_body(raw)
    ours = adapter.settings.credentials.get("username")
    if partner is not None and ours and partner != ours:
        raise ParseError(f"the notice names partnerId {partner!r}, not ours")
    return codec.order(body, action=action, raw=raw)


INLINE_PARSE_BYTES = 32 * 1024  # notices up to this are read on the event loop (a thread hop costs more)


def _read_notice(adapter: "MeituanAdapter", raw: bytes, action: str):
    """The revision a notice carries; ParseError (or whatever a hostile body provokes) if none."""
    partner, body = codec.notice_body(raw)
    ours = adapter.settings.credentials.get("username")
    if partner is not None and ours and partner != ours:
        raise ParseError(f"the notice names partnerId {partner!r}, not ours")
    return codec.order(body, action=action, raw=raw)


def _ok_data(rev, conf) -> dict:
    return {"orderId": rev.ota_booking_id, "orderVersion": rev.revision, "confirmNo": conf.confirmation,
            "status": conf.status}


def routes(adapter: "MeituanAdapter", receiver: BookingReceiver) -> list[web.RouteDef]:
    opts = adapter.opts
    max_body = int(adapter.settings.options.get("max_inbound_bytes") or INBOUND_MAX_BYTES)
    store_and_apply = getattr(receiver, "store_and_apply", None)  # the engine's; a test's may lack it

    # how many notices one set of signed headers may have confirmed by an order query:
    # bounded, so whoever copies one notice's headers cannot make us call Meituan at will
    confirms: OrderedDict[str, int] = OrderedDict()
    per_headers = int(adapter.settings.options.get("replay_confirm_limit") or REPLAY_CONFIRM_LIMIT)

    async def confirm_by_query(request: web.Request, raw: bytes) -> tuple[tuple[bytes, str] | None, str]:
        """The order a notice under already-used headers names, as Meituan itself holds it
        (``/hotel/order/query``, our own signed call), as a notice body; or None and why not."""
        key = request.headers.get("Date", "") + "|" + request.headers.get("Authorization", "")
        if confirms.get(key, 0) >= per_headers:
            return None, f"{per_headers} notices under these headers were confirmed already"
        try:
            _, body = await asyncio.to_thread(codec.notice_body, raw)
            hotel, order_id = str(body.get("hotelId") or ""), str(body.get("orderId") or "")
        except Exception as e:  # noqa: BLE001 - an unreadable body cannot be confirmed
            return None, f"the body names no order to confirm ({e.__class__.__name__})"
        if not hotel or not order_id:
            return None, "the body names no hotelId and orderId to confirm"
        confirms[key] = confirms.get(key, 0) + 1
        confirms.move_to_end(key)
        while len(confirms) > 10_000:
            confirms.popitem(last=False)
        try:
            rev = await adapter.query_order(hotel, order_id)
        except Exception as e:  # noqa: BLE001 - Meituan delivers it again later
            return None, f"the order query failed ({e.__class__.__name__}: {e})"
        if rev is None:
            return None, f"Meituan holds no order {order_id} of hotel {hotel}"
        ours = adapter.settings.credentials.get("username")
        body = json.dumps({"partnerId": ours, "body": json.loads(rev.raw)}, ensure_ascii=False).encode("utf-8")
        return (body, rev.action), ""

    def handler(action: str, own_path: str):
        operation = f"notice_{own_path.strip('/').replace('/', '_')}"

        async def handle(request: web.Request) -> web.Response:
            act, kind = action, codec.KIND[action]
            started = time.perf_counter()
            # nothing about the body is trusted (or masked whole) until the signature checks out
            ex = Exchange(channel=adapter.name, operation=operation, direction="in")
            raw = b""

            async def done(resp: web.Response, result: str, error: str | None = None) -> web.Response:
                ex.result, ex.status = result, resp.status
                ex.response = adapter.http.redact(resp.body if isinstance(resp.body, bytes) else None)
                ex.error = adapter.http.redact(error) if error else None
                ex.duration_ms = (time.perf_counter() - started) * 1000
                try:
                    await adapter.http.report(ex)
                except Exception:  # the sync log must never fail a booking
                    log.exception("could not report a meituan notice to the sync log")
                return resp

            async def refuse(reason: str, problem: str, resp: web.Response) -> web.Response:
                """Not Meituan's: nothing is stored; counted and sampled (2 KB, masked)."""
                ex.request = adapter.http.sample(raw)
                adapter.http.refused.note(reason, detail=problem, sample=ex.request, operation=operation,
                                          peer=request.remote)
                log.warning("meituan notice refused before storing", reason=reason, detail=problem[:200])
                return await done(resp, "rejected", problem)

            try:
                raw = await read_body(request, max_body)
            except BodyTooLarge as e:
                return await refuse("too_large", str(e), _reply(codec.CODE_MESSAGE_UNREADABLE, str(e), status=413))
            if opts.verify_inbound:
                paths = list(dict.fromkeys([request.path, own_path]))
                problem = adapter.signer.verify(request.method, paths, request.headers, raw)
                if problem and "already used" in problem:
                    # Meituan's own headers, already used for another body: two notices to this
                    # path in the same second (the Date has whole seconds). The body is not
                    # trusted; the order it names is read from Meituan instead (confirm_by_query)
                    confirmed, why = await confirm_by_query(request, raw)
                    if confirmed is None:
                        return await refuse("replayed", f"{problem}; {why}", _reply(
                            codec.CODE_AUTH_SIGNATURE, f"authentication failed: {problem}", status=401))
                    (raw, act), problem = confirmed, None
                    kind = codec.KIND[act]
                if problem:
                    return await refuse("not_authenticated", problem, _reply(
                        codec.CODE_AUTH_SIGNATURE, f"authentication failed: {problem}", status=401))
            ex.request = adapter.http.redact(raw)
            # read it (JSON; a large body in a worker thread, so a hostile one never holds up
            # the event loop), then store and apply it in one transaction when it names its
            # hotel and the receiver offers that (issue 13); otherwise the inbox first, as before
            try:
                if len(raw) <= INLINE_PARSE_BYTES:
                    rev, read_error = _read_notice(adapter, raw, act), None
                else:
                    rev, read_error = await asyncio.to_thread(_read_notice, adapter, raw, act), None
            except Exception as e:  # noqa: BLE001 - kept with the reason once the notice is stored
                rev, read_error = None, e
            if rev is not None and rev.hotel and store_and_apply is not None:
                ex.hotel = rev.hotel
                try:
                    _, conf = await store_and_apply(adapter.name, raw, kind, rev)
                except ParseError as e:  # its content cannot be applied (failed with the reason)
                    return await done(_reply(codec.CODE_MESSAGE_UNREADABLE, f"message not applicable: {e}"),
                                      "rejected", str(e))
                except Exception as e:  # ours, not Meituan's: answer so that Meituan delivers it again
                    log.exception("meituan notice not stored and applied", ota_booking_id=rev.ota_booking_id)
                    return await done(_reply(codec.CODE_SYSTEM_BUSY, "system busy, deliver again later",
                                             status=503), "retry", f"{e.__class__.__name__}: {e}")
                return await done(_reply(codec.CODE_OK, "ok", _ok_data(rev, conf)), "ok")
            inbox_id = await receiver.store(adapter.name, raw, kind)
            try:
                if read_error is not None:
                    raise read_error
                if rev is None:
                    raise ParseError("the notice could not be read")
                if not rev.hotel:  # named by the order id only: the booking we hold says which hotel
                    held = await receiver.hotel_of(adapter.name, rev.ota_booking_id)
                    if not held:
                        raise ParseError(f"the notice names no hotelId and no order {rev.ota_booking_id} "
                                         f"is held here")
                    rev = dataclasses.replace(rev, hotel=held)
                ex.hotel = rev.hotel
            except Exception as e:  # ParseError or whatever else: the stored notice fails with the reason
                why = str(e) if isinstance(e, ParseError) else f"{e.__class__.__name__}: {e}"
                await receiver.reject(inbox_id, f"meituan {own_path}: {why}")
                return await done(_reply(codec.CODE_MESSAGE_UNREADABLE, f"message unreadable: {why}"),
                                  "rejected", why)
            try:
                conf = await receiver.apply(inbox_id, rev)
            except ParseError as e:  # its content cannot be applied (failed with the reason): as unreadable
                return await done(_reply(codec.CODE_MESSAGE_UNREADABLE, f"message not applicable: {e}"),
                                  "rejected", str(e))
            except Exception as e:  # ours, not Meituan's: answer so that Meituan delivers it again
                log.exception("meituan notice stored but not applied", inbox_id=inbox_id,
                              ota_booking_id=rev.ota_booking_id)
                return await done(_reply(codec.CODE_SYSTEM_BUSY, "system busy, deliver again later", status=503),
                                  "retry", f"{e.__class__.__name__}: {e}")
            return await done(_reply(codec.CODE_OK, "ok", _ok_data(rev, conf)), "ok")

        return handle

    return [
        web.post(opts.notice_pay_path, handler("new", opts.notice_pay_path)),
        web.post(opts.notice_modify_path, handler("modify", opts.notice_modify_path)),
        web.post(opts.notice_refund_path, handler("cancel", opts.notice_refund_path)),
    ]
