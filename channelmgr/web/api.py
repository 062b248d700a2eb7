"""The operator API, /api/v1/: one table of routes, each with its models and the role it needs.

Handlers call the functions the CLI calls (channelmgr.ops, the Ledger, channelmgr.web.queries)
and hold no business rules. Input is parsed into pydantic models; bad input is a 4xx with
``{"error": "a sentence", "field": "..."}``, never a 500.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import structlog
from aiohttp import web
from pydantic import BaseModel, ValidationError

from channelmgr.ledger.types import LedgerError
from channelmgr.money import MoneyError
from channelmgr.web import accounts, queries
from channelmgr.web import auth as webauth
from channelmgr.web import models as M

if TYPE_CHECKING:  # pragma: no cover
    from channelmgr.daemon import Daemon

log = structlog.get_logger("channelmgr.web")
MAX_BODY = 64 * 1024
PREFIX = "/api/v1"


@dataclass
class Ctx:
    request: web.Request
    daemon: "Daemon"
    user: accounts.User | None
    path: Any = None
    query: Any = None
    body: Any = None


@dataclass
class Route:
    method: str
    path: str
    handler: Callable[[Ctx], Awaitable[Any]]
    summary: str
    role: str | None = "viewer"  # None: no login (login itself)
    path_model: type[BaseModel] | None = None
    query_model: type[BaseModel] | None = None
    body_model: type[BaseModel] | None = None
    response_model: type[BaseModel] | None = None
    errors: tuple[int, ...] = field(default_factory=tuple)
    raw: bool = False  # the handler returns its own web.Response


ROUTES: list[Route] = []


def route(method: str, path: str, summary: str, **kw: Any):
    def deco(fn):
        ROUTES.append(Route(method, PREFIX + path, fn, summary, **kw))
        return fn

    return deco


def _field_of(e: ValidationError) -> tuple[str | None, str]:
    err = e.errors()[0]
    loc = [str(p) for p in err.get("loc", ()) if not isinstance(p, int)]
    name = loc[0] if loc else None
    msg = err.get("msg", "is not valid")
    return name, (f"{name}: {msg}" if name else msg)


def _known_channels(d: "Daemon") -> list[str]:
    from channelmgr.config import CHANNEL_NAMES

    return sorted(set(CHANNEL_NAMES) | set(d.channels) | set(d.config.channels))


def _check_channel(d: "Daemon", channel: str | None) -> None:
    if channel is not None and channel not in _known_channels(d):
        raise _BadInput(f"there is no channel {channel!r}; the channels are {', '.join(_known_channels(d))}",
                        "channel")


class _BadInput(Exception):
    def __init__(self, error: str, field: str | None = None, status: int = 400):
        super().__init__(error)
        self.error, self.field, self.status = error, field, status


async def _json_body(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise _BadInput(f"the body is larger than {MAX_BODY // 1024} KB", None, 413)
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise _BadInput(f"the body is larger than {MAX_BODY // 1024} KB", None, 413)
    if not raw.strip():
        raise _BadInput("the body must be a JSON object")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise _BadInput("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _BadInput("the body must be a JSON object")
    return data


def make_handler(r: Route, daemon: "Daemon"):
    async def handle(request: web.Request) -> web.StreamResponse:
        user: accounts.User | None = request.get(webauth.USER)
        try:
            if r.role is not None and (user is None or not user.may(r.role)):
                return webauth.json_error(403, f"this needs the {r.role} role or above; "
                                               f"{user.name if user else 'you'} has {user.role if user else 'none'}")
            ctx = Ctx(request, daemon, user)
            try:
                if r.path_model:
                    ctx.path = r.path_model.model_validate(dict(request.match_info))
                if r.query_model:
                    ctx.query = r.query_model.model_validate({k: request.query[k] for k in request.query.keys()})
                if r.body_model:
                    ctx.body = r.body_model.model_validate(await _json_body(request))
            except ValidationError as e:
                name, msg = _field_of(e)
                status = 404 if r.path_model and name in (r.path_model.model_fields or {}) else 400
                return webauth.json_error(status, msg, name)
            out = await r.handler(ctx)
            if r.raw:
                return out
            if r.response_model is not None:
                out = r.response_model.model_validate(out).model_dump(mode="json", by_alias=True)
            return web.json_response(out, dumps=_dumps)
        except _BadInput as e:
            return webauth.json_error(e.status, e.error, e.field)
        except queries.NotFound as e:
            return webauth.json_error(404, str(e))
        except queries.Conflict as e:
            return webauth.json_error(409, str(e))
        except (LedgerError, MoneyError) as e:
            return webauth.json_error(400, str(e))
        except web.HTTPException:
            raise
        except Exception:
            log.exception("operator API call failed", path=request.path, method=request.method)
            return webauth.json_error(500, "the daemon failed to answer this; the error is in its log")

    return handle


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=str, ensure_ascii=False)


# ---- login ------------------------------------------------------------------------------
@route("POST", "/login", "Log in with a name and password: a session cookie and a CSRF token", role=None,
       body_model=M.LoginIn, response_model=M.LoginOut, errors=(400, 401, 429), raw=True)
async def login(c: Ctx) -> web.Response:
    from channelmgr.web import STATE

    web_state = c.request.app[STATE]
    cfg = c.daemon.config.web
    name, remote = c.body.name, webauth.remote_of(c.request)
    wait = max(web_state.by_name.retry_after(name), web_state.by_remote.retry_after(remote))
    if wait:
        return webauth.json_error(429, f"too many failed logins; try again in {wait} s", None,
                                  {"Retry-After": str(wait)})
    got = await accounts.login(c.daemon.rt.db, name, c.body.password, remote=remote,
                               session_hours=cfg.session_hours)
    if got is None:
        web_state.by_name.hit(name)
        web_state.by_remote.hit(remote)
        return webauth.json_error(401, "the name or the password is wrong (or the account is disabled)")
    user, sid, csrf = got
    max_age = int(cfg.session_hours * 3600)
    expires = datetime.now(timezone.utc).timestamp() + max_age
    body = M.LoginOut(name=user.name, role=user.role, csrf_token=csrf,
                      expires_at=datetime.fromtimestamp(expires, timezone.utc).isoformat())
    resp = web.json_response(body.model_dump(mode="json"))
    webauth.set_session_cookie(c.request, resp, sid, max_age)
    return resp


@route("POST", "/logout", "End this browser session", response_model=M.Ok, raw=True)
async def logout(c: Ctx) -> web.Response:
    sid = c.request.cookies.get(webauth.COOKIE)
    if sid and c.request.get(webauth.HOW) == "session":
        await accounts.logout(c.daemon.rt.db, sid, c.user)
    resp = web.json_response({"ok": True})
    webauth.clear_session_cookie(c.request, resp)
    return resp


@route("GET", "/me", "Who this is: name, role, how authenticated", response_model=M.Me)
async def me(c: Ctx) -> dict:
    return {"name": c.user.name, "role": c.user.role, "sees_guest_data": c.user.sees_guest_data,
            "auth": c.request[webauth.HOW]}


@route("GET", "/users", "The users, their roles and whether they have an API token (admin)", role="admin",
       response_model=M.UsersOut)
async def users(c: Ctx) -> dict:
    return {"users": await accounts.list_users(c.daemon.rt.db)}


# ---- status, sync log ---------------------------------------------------------------------
@route("GET", "/status", "Per channel: last success, last error, pushes waiting, breaker; inbox and conflicts",
       response_model=M.StatusOut)
async def status(c: Ctx) -> dict:
    from channelmgr.ops import status as ops_status

    disabled = [n for n, ch in c.daemon.config.channels.items() if not ch.enabled]
    return await ops_status(c.daemon.rt.db, list(c.daemon.channels), disabled)


@route("GET", "/sync-log", "The sync log, with the filters of `channelmgr logs`", query_model=M.SyncLogQuery,
       response_model=M.SyncLogOut, errors=(400,))
async def sync_log(c: Ctx) -> dict:
    from channelmgr.ops import logs, parse_since

    q: M.SyncLogQuery = c.query
    _check_channel(c.daemon, q.channel)
    try:
        since = parse_since(q.since) if not q.after_id else None
    except (ValueError, OverflowError) as e:
        raise _BadInput(str(e).replace("--since", "since"), "since") from None
    rows = await logs(c.daemon.rt.db, channel=q.channel, property=q.property, since=since, failed=q.failed,
                      after_id=q.after_id, limit=q.limit, before_id=q.before_id)
    if not q.full:
        for r in rows:
            r.pop("request", None)
            r.pop("response", None)
    return {"rows": rows, "last_id": rows[-1]["id"] if rows else q.after_id,
            "first_id": rows[0]["id"] if rows else None}


@route("GET", "/journal", "Every change, newest first: who, what, before, after, why (`channelmgr journal`)",
       query_model=M.JournalQuery, response_model=M.JournalOut, errors=(400,))
async def journal(c: Ctx) -> dict:
    rows = await c.daemon.rt.ledger.journal(c.query.property, c.query.limit)
    if not c.user.may("admin"):  # where people logged in from is the admin's to see
        for r in rows:
            if r["entity"] == "user":
                r["before"] = r["after"] = None
    return {"rows": rows}


# ---- conflicts ------------------------------------------------------------------------------
@route("GET", "/conflicts", "Conflicts (open by default), newest first, by kind", query_model=M.ConflictsQuery,
       response_model=M.ConflictsOut, errors=(400,))
async def conflicts_list(c: Ctx) -> dict:
    from channelmgr.ops import status as ops_status

    q: M.ConflictsQuery = c.query
    rows = await queries.conflicts(c.daemon.rt.db, status=None if q.status == "all" else q.status, kind=q.kind,
                                   before_id=q.before_id, limit=q.limit)
    st = await ops_status(c.daemon.rt.db, [], [])
    return {"conflicts": rows, "open_by_kind": st["conflicts_open"]}


@route("GET", "/conflicts/{id}", "One conflict", path_model=M.ConflictPath, response_model=M.ConflictOut,
       errors=(404,))
async def conflict_show(c: Ctx) -> dict:
    return await queries.conflict(c.daemon.rt.db, c.path.id)


@route("POST", "/conflicts/{id}/resolve", "Mark a conflict resolved with a note (who and when are recorded)",
       role="operator", path_model=M.ConflictPath, body_model=M.ResolveIn, response_model=M.ConflictOut,
       errors=(400, 403, 404, 409))
async def conflict_resolve(c: Ctx) -> dict:
    return await queries.resolve_conflict(c.daemon.rt.db, c.path.id, c.body.note, actor=c.user.actor,
                                          resolved_by=c.user.name)


# ---- bookings -------------------------------------------------------------------------------
@route("GET", "/bookings", "Bookings, newest first; guest names and phones masked below the operator role",
       query_model=M.BookingsQuery, response_model=M.BookingsOut, errors=(400,))
async def bookings_list(c: Ctx) -> dict:
    q: M.BookingsQuery = c.query
    _check_channel(c.daemon, q.channel)
    rows = await queries.bookings(c.daemon.rt.db, c.daemon.rt.ledger.cipher, reveal=c.user.sees_guest_data,
                                  ota_id=q.ota_id, confirmation=q.confirmation, arrival=q.arrival, status=q.status,
                                  channel=q.channel, property=q.property, before_id=q.before_id, offset=q.offset,
                                  limit=q.limit)
    return {"bookings": rows, "next_before_id": rows[-1]["id"] if len(rows) == q.limit else None}


@route("GET", "/bookings/{id}", "One booking: its revisions, nights, money and conflicts",
       path_model=M.BookingPath, response_model=M.BookingOut, errors=(404,))
async def booking_show(c: Ctx) -> dict:
    return await queries.booking(c.daemon.rt.ledger, c.path.id, reveal=c.user.sees_guest_data)


# ---- calendar, mappings ---------------------------------------------------------------------
@route("GET", "/calendar", "One property's room types by nights: free / sold / physical, closed and stop-sold",
       query_model=M.CalendarQuery, response_model=M.CalendarOut, errors=(400,))
async def calendar(c: Ctx) -> dict:
    q: M.CalendarQuery = c.query
    if q.to < q.from_:
        raise _BadInput(f"the range ends ({q.to}) before it starts ({q.from_})", "to")
    if (q.to - q.from_).days >= M.MAX_CALENDAR_NIGHTS:
        raise _BadInput(f"the calendar shows at most {M.MAX_CALENDAR_NIGHTS} nights at once", "to")
    _check_channel(c.daemon, q.channel)
    chrt = c.daemon.channels.get(q.channel) if q.channel else None
    if q.channel and chrt is None:
        raise _BadInput(f"the channel {q.channel} is not running in this daemon", "channel")
    return await queries.calendar(c.daemon.rt.ledger, q.property, q.from_, q.to, mappings=c.daemon.mappings,
                                  channel=q.channel, capabilities=chrt.adapter.capabilities if chrt else None)


@route("GET", "/mappings", "The mapping version in force, when it came in, and the problems of a refused edit",
       response_model=M.MappingsOut)
async def mappings(c: Ctx) -> dict:
    d = c.daemon
    # the live reload's last result when it refused an edit (made after start-up), else start-up's
    last = getattr(d.reloader, "last", None)
    if last is not None and not last.ok:
        problems = [str(p) for p in last.problems] or ([str(last.error)] if last.error else [])
    else:
        problems = list(d.rt.mapping_errors or []) if last is None else []
    return await queries.mappings(d.rt.ledger, d.mappings.fingerprint if d.mappings else None, problems)


# ---- ARI --------------------------------------------------------------------------------------
@route("PUT", "/ari", "Change rooms, price or restrictions for a range of nights (what `channelmgr ari set` does)",
       role="revenue", body_model=M.AriIn, response_model=M.AriOut, errors=(400, 403))
async def ari_set(c: Ctx) -> dict:
    from channelmgr.cli import _property_currency
    from channelmgr.ledger.types import AriChange
    from channelmgr.money import to_minor

    b: M.AriIn = c.body
    d = c.daemon
    price_minor = None
    if b.price is not None:
        currency = await _property_currency(d.rt, b.property)
        try:
            price_minor = to_minor(b.price, currency)
        except MoneyError as e:
            raise _BadInput(str(e), "price") from None
    change = AriChange(property=b.property, room_type=b.room_type, rate_plan=b.rate_plan, start=b.from_, end=b.to,
                       rooms=b.rooms, price_minor=price_minor, min_los=b.min_los, max_los=b.max_los, cta=b.cta,
                       ctd=b.ctd, stop_sell=b.stop_sell, out_of_order=b.out_of_order, held=b.held)
    summary = await d.rt.ledger.set_ari(change, actor=c.user.actor, reason=b.reason)
    d.wake_all()
    warnings = []
    pm = d.mappings.get(b.property) if d.mappings else None
    spec = pm.room_types.get(b.room_type) if pm else None
    if b.rooms is not None and spec is not None and b.rooms > spec.physical_rooms:
        warnings.append(f"{b.rooms} rooms is more than the {spec.physical_rooms} physical rooms of {b.property} "
                        f"{b.room_type} in mappings/; set anyway")
    return {"cells_changed": summary.cells_changed, "journal_rows": summary.journal_rows,
            "outbox_rows": summary.outbox_rows, "correlation_id": summary.correlation_id,
            "nights": (b.to - b.from_).days + 1, "warnings": warnings}


@route("GET", "/openapi.json", "This document", raw=True)
async def openapi(c: Ctx) -> web.Response:
    from channelmgr.web.openapi import document

    return web.json_response(document(ROUTES))


from channelmgr.desk import api as _desk_api  # noqa: E402,F401  (issue 12: the desk's routes join the table)
from channelmgr.reports import api as _reports_api  # noqa: E402,F401  (issue 14: /api/v1/reports/...)


def add_routes(app: web.Application, daemon: "Daemon") -> None:
    for r in ROUTES:
        app.router.add_route(r.method, r.path, make_handler(r, daemon))
