"""Where Meituan pushes order notices to us (mounted by the daemon under /inbound/meituan/).

For every notice, in this order (DESIGN.md invariants 2 and 3):

1. check the MWS signature, the Date skew and the PartnerId; a notice that fails is
   answered with an auth error code and nothing is stored (it is not Meituan's);
2. ``receiver.store`` the raw bytes (the inbox) before anything else;
3. read it; an unreadable notice is ``receiver.reject``-ed with the reason and answered
   with a non-zero code, so Meituan keeps it and delivers it again later;
4. ``receiver.apply`` the revision, and only then answer code 0 with our confirmation
   number (a duplicate is answered the same way: delivery is idempotent by revision).
   If applying fails (our database, say) the answer is a retriable error code (HTTP 503).

Before step 1 the body is read with a cap (256 KB, option ``max_inbound_bytes``; 413 as
soon as it is passed). Refused notices (too large, not signed, a replayed signature) are
not stored: each is counted (``adapter.http.refused``, on /api/status), kept as a 2 KB
masked sample and logged as a sync-log row ``rejected``. What the signature covers is said
in adapters/meituan/auth.py: ``METHOD path`` and ``Date``, not the body, so a signature is
accepted once only (the replay cache). Parsing runs in a worker thread.
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
from adapters.meituan import codec

if TYPE_CHECKING:  # pragma: no cover
    from adapters.meituan.client import MeituanAdapter

log = structlog.get_logger("channelmgr.inbound.meituan")


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


def routes(adapter: "MeituanAdapter", receiver: BookingReceiver) -> list[web.RouteDef]:
    opts = adapter.opts
    max_body = int(adapter.settings.options.get("max_inbound_bytes") or INBOUND_MAX_BYTES)

    def handler(action: str, own_path: str):
        kind = codec.KIND[action]
        operation = f"notice_{own_path.strip('/').replace('/', '_')}"

        async def handle(request: web.Request) -> web.Response:
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
                if problem:
                    reason = "replayed" if "already used" in problem else "not_authenticated"
                    return await refuse(reason, problem, _reply(codec.CODE_AUTH_SIGNATURE,
                                                                f"authentication failed: {problem}", status=401))
            ex.request = adapter.http.redact(raw)
            inbox_id = await receiver.store(adapter.name, raw, kind)
            try:  # JSON parsing in a worker thread: a hostile body never holds up the event loop
                partner, body = await asyncio.to_thread(codec.notice_body, raw)
                ours = adapter.settings.credentials.get("username")
                if partner is not None and ours and partner != ours:
                    raise ParseError(f"the notice names partnerId {partner!r}, not ours")
                rev = await asyncio.to_thread(codec.order, body, action=action, raw=raw)
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
            data = {"orderId": rev.ota_booking_id, "orderVersion": rev.revision, "confirmNo": conf.confirmation,
                    "status": conf.status}
            return await done(_reply(codec.CODE_OK, "ok", data), "ok")

        return handle

    return [
        web.post(opts.notice_pay_path, handler("new", opts.notice_pay_path)),
        web.post(opts.notice_modify_path, handler("modify", opts.notice_modify_path)),
        web.post(opts.notice_refund_path, handler("cancel", opts.notice_refund_path)),
    ]
