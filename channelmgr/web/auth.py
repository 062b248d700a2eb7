"""Who is asking: browser sessions (cookie + CSRF header) and API tokens (Bearer).

Nothing on the daemon's HTTP server answers without a login except ``/health``,
``/metrics`` (its own access rule, ``web.metrics_access``), ``POST /api/v1/login`` and the
OTAs' ``/inbound/...`` endpoints (their own auth, in their sub-applications).
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import defaultdict, deque
from typing import Any, Awaitable, Callable

import structlog
from aiohttp import web

from channelmgr.web import accounts
from channelmgr.web.accounts import User

log = structlog.get_logger("channelmgr.web")

COOKIE = "channelmgr_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
PUBLIC_PATHS = ("/health", "/metrics", "/api/v1/login", "/login", "/lang/{lang}")
PUBLIC_PREFIXES = ("/static/",)  # the console's CSS, htmx and echarts (channelmgr/web/static)
CSRF_FIELD = "csrf"  # the console's forms carry the token as this field (channelmgr/web/pages)
USER = web.RequestKey("channelmgr.user", User)
HOW = web.RequestKey("channelmgr.auth", str)  # session | token
CSRF_DIGEST = web.RequestKey("channelmgr.csrf", str)  # the session's CSRF token's sha256


def is_page(request: web.Request) -> bool:
    """A console page (HTML): anything outside /api/; refused with a redirect to /login."""
    return not request.path.startswith("/api/")


def login_redirect(request: web.Request) -> web.Response:
    from urllib.parse import quote

    nxt = request.path_qs if request.method in SAFE_METHODS else "/"
    return web.Response(status=303, headers={"Location": f"/login?next={quote(nxt, safe='')}"})


async def _sent_csrf(request: web.Request) -> str:
    sent = request.headers.get(CSRF_HEADER, "")
    if sent or not is_page(request):
        return sent
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        if request.content_length is not None and request.content_length > 256 * 1024:
            return ""
        form = await request.post()  # cached on the request: the handler reads it again
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


def json_error(status: int, error: str, field: str | None = None, headers: dict[str, str] | None = None):
    return web.json_response({"error": error, "field": field}, status=status, headers=headers)


def is_loopback(request: web.Request) -> bool:
    peer = request.remote or ""
    try:
        return ipaddress.ip_address(peer.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def remote_of(request: web.Request) -> str:
    return (request.remote or "?")[:64]


class RateLimiter:
    """At most ``limit`` events per ``window`` seconds per key (failed logins here)."""

    def __init__(self, limit: int, window: float = 60.0, max_keys: int = 10_000):
        self.limit, self.window, self.max_keys = limit, window, max_keys
        self.events: dict[str, deque[float]] = defaultdict(deque)

    def _trim(self, key: str, now: float) -> deque[float]:
        q = self.events[key]
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def retry_after(self, key: str) -> int:
        """0 when allowed, else the seconds until the next attempt is."""
        now = time.monotonic()
        q = self._trim(key, now)
        if not q:
            self.events.pop(key, None)
        if len(q) < self.limit:
            return 0
        return max(1, math.ceil(q[0] + self.window - now))

    def hit(self, key: str) -> None:
        if len(self.events) >= self.max_keys:  # bounded memory: forget the quietest keys
            now = time.monotonic()
            for k in [k for k, q in self.events.items() if not q or q[-1] <= now - self.window]:
                del self.events[k]
        self.events[key].append(time.monotonic())


async def authenticate(request: web.Request, db) -> tuple[User | None, str | None, str | None]:
    """(user, how, csrf digest); a Bearer header that is present decides alone."""
    authz = request.headers.get("Authorization")
    if authz is not None:
        scheme, _, token = authz.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None, None, None
        return await accounts.user_for_token(db, token.strip()), "token", None
    sid = request.cookies.get(COOKIE)
    if sid:
        found = await accounts.session_user(db, sid)
        if found:
            return found[0], "session", found[1]
    return None, None, None


def is_public(request: web.Request) -> bool:
    info = request.match_info
    if len(info.apps) > 1:  # a sub-application: the OTAs' /inbound/<ota>/, with their own auth
        return True
    route = info.route
    resource = getattr(route, "resource", None)
    if request.path.startswith(PUBLIC_PREFIXES):
        return True
    return resource is not None and resource.canonical in PUBLIC_PATHS


def middleware(get_db: Callable[[], Any]):
    @web.middleware
    async def auth(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        if is_public(request):
            return await handler(request)
        try:
            user, how, csrf = await authenticate(request, get_db())
        except Exception:
            log.exception("authentication failed unexpectedly", path=request.path)
            return json_error(503, "the ledger could not be read to check the login; try again")
        if user is None:
            if is_page(request):
                return login_redirect(request)
            return json_error(401, "log in first (POST /api/v1/login), or send an API token as "
                                   "Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer"})
        if how == "session" and request.method not in SAFE_METHODS:
            sent = await _sent_csrf(request)
            if not sent or not accounts.same(accounts.digest(sent), csrf or ""):
                if is_page(request):
                    return web.Response(status=403, content_type="text/plain", text=(
                        "403: this form was not sent by the console's own page (its CSRF token is missing "
                        "or stale); reload the page and try again"))
                return json_error(403, f"a change made with a browser session needs the {CSRF_HEADER} header "
                                       "with the csrf_token given at login", CSRF_HEADER)
        request[USER] = user
        request[HOW] = how
        request[CSRF_DIGEST] = csrf or ""
        return await handler(request)

    return auth


def set_session_cookie(request: web.Request, response: web.StreamResponse, sid: str, max_age: int) -> None:
    # Secure unless this is plain http on loopback (the demo on a laptop)
    secure = request.secure or not is_loopback(request)
    response.set_cookie(COOKIE, sid, max_age=max_age, path="/", httponly=True, secure=secure, samesite="Strict")


def clear_session_cookie(request: web.Request, response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/")
