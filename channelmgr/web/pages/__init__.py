"""The operations console's HTML pages (issue 11), served by the daemon's aiohttp app.

Server-rendered with aiohttp-jinja2 (Jinja2, autoescape on, the i18n extension), live parts
refreshed with htmx (channelmgr/web/static/vendor, copied from pinned npm packages by
scripts/vendor_assets.py). The views hold no business rules: they call
channelmgr.web.queries, channelmgr.ops and the Ledger exactly as the API does. The
contract with the browser tests, the desk and the reports is /work/notes/PAGES_CONTRACT.md
(URLs, data-testid hooks, i18n).

How to add a page (the desk and the reports do it this way)
-----------------------------------------------------------
1. A routes module of your own, e.g. ``channelmgr/web/pages/desk.py``::

       from aiohttp import web
       from channelmgr.web.pages import page, render, require

       def add_routes(app: web.Application, daemon) -> None:
           app.router.add_get("/desk", page(daemon, desk_home))

       async def desk_home(request, daemon, user):
           # require(user, "operator") returns a 403 page when the role is short
           return render(request, "desk/home.html", {"rows": ...}, nav="desk")

   ``page(daemon, fn)`` wraps ``fn(request, daemon, user)``: the language is set for the
   request, and a LedgerError/NotFound becomes a 400/404 page. Login is already enforced
   by channelmgr/web/auth.py's middleware (a page without a session is 303 /login?next=);
   a form POST must carry the hidden field ``csrf`` (``{{ csrf_field() }}`` in a template).
2. Register it in ``PAGE_MODULES`` below (one line), e.g. ``"channelmgr.web.pages.desk"``.
3. Templates in channelmgr/web/templates/desk/...: ``{% extends "base.html" %}`` and fill
   ``{% block title %}`` and ``{% block content %}``. Helpers in every template:
   ``_()``/``gettext``/``ngettext`` and ``{% trans %}``, ``money(minor, currency)``,
   ``day(date)``, ``when(datetime, tz)``, ``ago(datetime)``, ``number(n)``, ``csrf_field()``,
   ``user``, ``lang``, ``url_lang(lang)``.
4. One nav entry: add a ``("/desk", "desk", _("Desk"))``-style line to the ``NAV`` list
   below (the order is the order on the page); the base template renders it with
   ``data-nav=desk`` and marks the current page from ``render(..., nav="desk")``.
5. Words: write English msgids in the templates and add your own gettext domain as
   channelmgr/web/locale/zh/LC_MESSAGES/desk.po (and en/.../desk.po, msgstr may be empty
   there). The loader (channelmgr/web/pages/i18n.py) reads every <domain>.po of each
   language at start-up and merges them; no compile step. tests/web/test_pages.py checks
   that every msgid of every zh catalog has a msgstr and that every msgid the templates use
   is in some catalog.
"""

from __future__ import annotations

import importlib
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import aiohttp_jinja2
import jinja2
import structlog
from aiohttp import web
from markupsafe import Markup, escape

from channelmgr.ledger.types import LedgerError
from channelmgr.web import auth as webauth
from channelmgr.web.pages import i18n

if TYPE_CHECKING:  # pragma: no cover
    from channelmgr.daemon import Daemon

log = structlog.get_logger("channelmgr.web")

HERE = Path(__file__).resolve().parent.parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
CSRF_COOKIE = "channelmgr_csrf"  # the raw CSRF token of the session, for the page's forms

# the route modules: each has add_routes(app, daemon)
PAGE_MODULES = ["channelmgr.web.pages.console", "channelmgr.web.pages.desk", "channelmgr.web.pages.reports"]


def _(s: str) -> str:  # marks a msgid for extraction; translated when rendered
    return s


# the nav, in order: (path, key, msgid)
NAV: list[tuple[str, str, str]] = [
    ("/", "channels", _("Channels")),
    ("/calendar", "calendar", _("Calendar")),
    ("/bookings", "bookings", _("Bookings")),
    ("/sync-log", "sync-log", _("Sync log")),
    ("/conflicts", "conflicts", _("Conflicts")),
    ("/desk", "desk", _("Desk")),  # issue 12: the reservations desk (channelmgr/web/pages/desk.py)
    ("/reports", "reports", _("Reports")),  # issue 14: channel reports (channelmgr/web/pages/reports.py)
    ("/mappings", "mappings", _("Mappings")),
]


BRANDS = {"booking": "Booking.com", "ctrip": "Ctrip", "fliggy": "Fliggy", "meituan": "Meituan"}


def brand(channel: str | None) -> str:
    return BRANDS.get(channel or "", channel or "—")


def make_env(app: web.Application) -> jinja2.Environment:
    env = aiohttp_jinja2.setup(
        app, loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True)
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)
    env.globals.update(money=i18n.money, day=i18n.day, day_short=i18n.day_short, when=i18n.when,
                       ago=i18n.ago, number=i18n.number, seconds=i18n.seconds, NAV=NAV, brand=brand)
    return env


def lang_of(request: web.Request) -> str:
    return i18n.pick_lang(request.cookies.get(i18n.COOKIE), request.headers.get("Accept-Language"))


def csrf_token(request: web.Request) -> str:
    """The session's CSRF token for the page's forms: the raw value kept in an HttpOnly
    cookie at login, checked against the session's stored digest (a stale one is dropped)."""
    raw = request.cookies.get(CSRF_COOKIE, "")
    want = request.get(webauth.CSRF_DIGEST)
    if not raw or not want or len(raw) > 200:
        return ""
    from channelmgr.web import accounts

    return raw if accounts.same(accounts.digest(raw), want) else ""


def render(request: web.Request, template: str, context: dict[str, Any] | None = None, *, nav: str | None = None,
           status: int = 200) -> web.Response:
    lang = lang_of(request)
    i18n.CURRENT.set(lang)
    token = csrf_token(request)
    ctx = {"lang": lang, "html_lang": i18n.HTML_LANG[lang], "user": request.get(webauth.USER), "nav": nav,
           "request_path": request.path_qs, "csrf": token,
           "csrf_field": lambda: Markup(f'<input type="hidden" name="csrf" value="{escape(token)}">'),
           "url_lang": lambda to: f"/lang/{to}?next={_quote(request.path_qs)}"}
    u = ctx["user"]
    ctx["role_word"] = i18n.gettext(ROLE_WORDS.get(u.role, u.role)) if u else ""
    ctx.update(context or {})
    resp = aiohttp_jinja2.render_template(template, request, ctx, status=status)
    resp.headers.setdefault("Cache-Control", "no-store")
    resp.headers.setdefault("X-Frame-Options", "DENY")
    resp.headers.setdefault("Referrer-Policy", "same-origin")
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    return resp


def _quote(s: str) -> str:
    from urllib.parse import quote

    return quote(s, safe="")


def error_page(request: web.Request, status: int, message: str, *, detail: str | None = None) -> web.Response:
    return render(request, "error.html", {"status": status, "message": message, "detail": detail}, status=status)


class Refused(Exception):
    """A page refused for a reason shown to the user (status, msgid already translated)."""

    def __init__(self, status: int, message: str, detail: str | None = None):
        super().__init__(message)
        self.status, self.message, self.detail = status, message, detail


def date_arg(request: web.Request, name: str) -> date | None:
    """A date from the query string (YYYY-MM-DD, 2000-2199), None when absent; else a 400 page."""
    v = (request.query.get(name) or "").strip()
    if not v:
        return None
    try:
        d = date.fromisoformat(v[:10])
    except ValueError:
        raise Refused(400, i18n.gettext("A date is written YYYY-MM-DD."), f"{name}={v[:40]}") from None
    if not (date(2000, 1, 1) <= d <= date(2199, 12, 31)):
        raise Refused(400, i18n.gettext("A date is between 2000 and 2199."), f"{name}={v[:40]}")
    return d


ROLE_WORDS = {"viewer": _("viewer"), "operator": _("operator"), "revenue": _("revenue"), "admin": _("admin")}


def require(user, role: str) -> None:
    """Raise a 403 page unless ``user`` has ``role`` or above."""
    if user is None or not user.may(role):
        raise Refused(403, i18n.gettext("This needs the %(role)s role or above; you have %(mine)s.") % {
            "role": i18n.gettext(ROLE_WORDS[role]),
            "mine": i18n.gettext(ROLE_WORDS.get(user.role, user.role)) if user else "-"})


Handler = Callable[[web.Request, "Daemon", Any], Awaitable[web.StreamResponse]]


def page(daemon: "Daemon", fn: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    from channelmgr.money import MoneyError
    from channelmgr.web import queries

    async def handle(request: web.Request) -> web.StreamResponse:
        i18n.CURRENT.set(lang_of(request))
        try:
            return await fn(request, daemon, request.get(webauth.USER))
        except Refused as e:
            return error_page(request, e.status, e.message, detail=e.detail)
        except queries.NotFound as e:
            return error_page(request, 404, i18n.gettext("Not found."), detail=str(e))
        except (LedgerError, MoneyError) as e:
            return error_page(request, 400, i18n.gettext("The request was refused."), detail=str(e))
        except web.HTTPException:
            raise
        except Exception:
            log.exception("console page failed", path=request.path)
            return error_page(request, 500, i18n.gettext("The daemon failed to answer this; the error is in its log."))

    return handle


def mount_pages(app: web.Application, daemon: "Daemon") -> None:
    """Templates, static files, the language switch, login/logout and every page module."""
    make_env(app)
    i18n.catalogs()  # read the .po files now, not on the first request
    app.router.add_static("/static/", str(STATIC), name="static", append_version=False)

    async def h_lang(request: web.Request) -> web.Response:
        lang = request.match_info["lang"]
        nxt = _safe_next(request.query.get("next"))
        resp = web.Response(status=303, headers={"Location": nxt})
        if lang in i18n.LANGS:
            resp.set_cookie(i18n.COOKIE, lang, max_age=365 * 24 * 3600, path="/", samesite="Lax", httponly=True,
                            secure=request.secure)
        return resp

    app.router.add_get("/lang/{lang}", h_lang)
    from channelmgr.web.pages import login as login_pages

    login_pages.add_routes(app, daemon)
    for name in PAGE_MODULES:
        importlib.import_module(name).add_routes(app, daemon)


def _safe_next(nxt: str | None) -> str:
    """Only a path on this server (no scheme, no //host)."""
    if not nxt or not nxt.startswith("/") or nxt.startswith("//") or "\\" in nxt or len(nxt) > 2000:
        return "/"
    return nxt
