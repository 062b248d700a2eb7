"""GET/POST /login and POST /logout: the console's form login, on accounts.login.

The login form carries its own CSRF token (double submit: a random value in a cookie and
in the form, compared); after login the session's CSRF token is kept raw in an HttpOnly
cookie so every page can put it in its forms (channelmgr.web.pages.csrf_token), while the
ledger keeps only its digest. Failed logins count in the same rate limiter as the API's.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from aiohttp import web

from channelmgr.web import accounts
from channelmgr.web import auth as webauth
from channelmgr.web.pages import CSRF_COOKIE, _safe_next, i18n, render

if TYPE_CHECKING:  # pragma: no cover
    from channelmgr.daemon import Daemon

LOGIN_CSRF_COOKIE = "channelmgr_login_csrf"


def _login_form(request: web.Request, *, error: str | None = None, status: int = 200, name: str = "",
                retry_after: int = 0) -> web.Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not token or len(token) > 100:
        token = secrets.token_urlsafe(24)
    resp = render(request, "login.html", {"error": error, "name": name, "login_csrf": token,
                                          "next": _safe_next(request.query.get("next")),
                                          "retry_after": retry_after}, status=status)
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, path="/login", httponly=True, samesite="Strict",
                    secure=request.secure or not webauth.is_loopback(request), max_age=3600)
    return resp


def add_routes(app: web.Application, daemon: "Daemon") -> None:
    from channelmgr.web import STATE

    async def get_login(request: web.Request) -> web.StreamResponse:
        i18n.CURRENT.set(i18n.pick_lang(request.cookies.get(i18n.COOKIE), request.headers.get("Accept-Language")))
        return _login_form(request)

    async def post_login(request: web.Request) -> web.StreamResponse:
        i18n.CURRENT.set(i18n.pick_lang(request.cookies.get(i18n.COOKIE), request.headers.get("Accept-Language")))
        if request.content_length is not None and request.content_length > 16 * 1024:
            return _login_form(request, error=i18n.gettext("The form is too large."), status=413)
        form = await request.post()
        name = str(form.get("username") or "")[:64].strip()
        password = str(form.get("password") or "")[:1024]
        sent, kept = str(form.get("csrf") or ""), request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not sent or not kept or not accounts.same(sent, kept):
            return _login_form(request, status=403, name=name, error=i18n.gettext(
                "The login form had expired; it has been reloaded, please log in again."))
        state = request.app[STATE]
        remote = webauth.remote_of(request)
        wait = max(state.by_name.retry_after(name), state.by_remote.retry_after(remote))
        if wait:
            resp = _login_form(request, status=429, name=name, retry_after=wait, error=i18n.gettext(
                "Too many failed logins; try again in %(n)s s.") % {"n": wait})
            resp.headers["Retry-After"] = str(wait)
            return resp
        cfg = daemon.config.web
        got = await accounts.login(daemon.rt.db, name, password, remote=remote, session_hours=cfg.session_hours)
        if got is None:
            state.by_name.hit(name)
            state.by_remote.hit(remote)
            return _login_form(request, status=401, name=name, error=i18n.gettext(
                "The name or the password is wrong (or the account is disabled)."))
        _user, sid, csrf = got
        max_age = int(cfg.session_hours * 3600)
        resp = web.Response(status=303, headers={"Location": _safe_next(request.query.get("next")
                                                                         or str(form.get("next") or ""))})
        webauth.set_session_cookie(request, resp, sid, max_age)
        resp.set_cookie(CSRF_COOKIE, csrf, max_age=max_age, path="/", httponly=True, samesite="Strict",
                        secure=request.secure or not webauth.is_loopback(request))
        resp.del_cookie(LOGIN_CSRF_COOKIE, path="/login")
        return resp

    async def post_logout(request: web.Request) -> web.StreamResponse:
        user = request.get(webauth.USER)
        sid = request.cookies.get(webauth.COOKIE)
        if sid and user is not None and request.get(webauth.HOW) == "session":
            await accounts.logout(daemon.rt.db, sid, user)
        resp = web.Response(status=303, headers={"Location": "/login"})
        webauth.clear_session_cookie(request, resp)
        resp.del_cookie(CSRF_COOKIE, path="/")
        return resp

    app.router.add_get("/login", get_login)
    app.router.add_post("/login", post_login)
    app.router.add_post("/logout", post_logout)
