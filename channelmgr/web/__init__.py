"""The operations console's backend (issue 11): accounts, the operator API /api/v1/, /metrics.

``mount_web(app, daemon)`` is the daemon's one call: it puts the login in front of every
route of the daemon's aiohttp app (except /health, /metrics and the OTAs' /inbound/...),
adds the API and the metrics, and hooks the metrics into the sync log and the ledger's
write path. Modules: accounts (users, tokens, sessions), auth (middleware, rate limit),
models (pydantic), api (the route table), openapi (the document), queries (reads shared
with the CLI), metrics, commands (the CLI's `users` and `conflicts show|resolve`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from aiohttp import web

if TYPE_CHECKING:  # pragma: no cover
    from channelmgr.daemon import Daemon

log = structlog.get_logger("channelmgr.web")


@dataclass
class WebState:
    daemon: "Daemon"
    metrics: object
    by_name: object
    by_remote: object


STATE = web.AppKey("channelmgr.web", WebState)


def mount_web(app: web.Application, daemon: "Daemon") -> WebState:
    from channelmgr.web import api, auth
    from channelmgr.web.metrics import CONTENT_TYPE, Metrics

    cfg = daemon.config.web
    metrics = Metrics(daemon)
    state = WebState(daemon, metrics, auth.RateLimiter(cfg.login_failures_per_minute),
                     auth.RateLimiter(cfg.login_failures_per_minute))
    app[STATE] = state
    app.middlewares.append(auth.middleware(lambda: daemon.rt.db))
    if daemon.synclog is not None:
        daemon.synclog.listeners.append(metrics.on_sync_row)
    daemon.rt.db.write_listeners.append(metrics.on_write)

    async def h_metrics(request: web.Request) -> web.Response:
        access = cfg.metrics_access
        if access == "loopback" and not auth.is_loopback(request):
            return auth.json_error(403, "/metrics answers loopback addresses only (web.metrics_access)")
        if access == "token":
            user, how, _ = await auth.authenticate(request, daemon.rt.db)
            if user is None or how != "token":
                return auth.json_error(401, "/metrics needs an API token: Authorization: Bearer <token>",
                                       headers={"WWW-Authenticate": "Bearer"})
        body = await metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    app.router.add_get("/metrics", h_metrics)
    api.add_routes(app, daemon)
    from channelmgr.web.pages import mount_pages

    mount_pages(app, daemon)  # the console's HTML pages (channelmgr/web/pages)

    if daemon.config.demo.synthetic_guests:
        async def demo_admin(_app: web.Application) -> None:
            from channelmgr.web.accounts import ensure_admin

            try:
                password = await ensure_admin(daemon.rt.db)
            except Exception as e:  # the daemon still runs; an admin can be added with `users add`
                log.error("demo: the admin user could not be created", error=f"{e.__class__.__name__}: {e}")
                return
            if password:
                where = daemon.base_url or f"http://{daemon.config.http.host}:{daemon.config.http.port}"
                log.warning(f"demo: created the user admin with the password {password} (shown only now)",
                            user="admin", login=f"{where}/api/v1/login")
                print(f"channelmgr demo: log in as admin with the password {password} (shown once; "
                      f"`channelmgr users add` makes more users)", file=sys.stderr, flush=True)

        app.on_startup.append(demo_admin)
    return state
