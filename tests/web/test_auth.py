"""Logging in, sessions, CSRF, tokens, the rate limit, and what answers without a login (issue 11)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import aiohttp
import pytest
from sqlalchemy import select

from channelmgr.ledger import models as m
from channelmgr.web import accounts
from channelmgr.web.api import ROUTES
from tests.web.helpers import PASSWORD, bearer, login, make_user

pytestmark = pytest.mark.slow


async def journal(r, action: str) -> list:
    async def q(conn):
        return (await conn.execute(select(m.journal).where(m.journal.c.entity == "user",
                                                           m.journal.c.action == action)
                                   .order_by(m.journal.c.id))).all()

    return await r.d.rt.db.read(q)


async def test_nothing_answers_without_a_login_but_health_metrics_and_inbound(run_sqlite):
    r = run_sqlite
    base = r.d.base_url
    for route in ROUTES:
        if route.role is None:
            continue
        path = route.path.replace("{id}", "1")
        async with r.http.request(route.method, base + path, json={}) as resp:
            assert resp.status == 401, (route.method, path, resp.status)
            body = await resp.json()
            assert "log in" in body["error"] and "field" in body
    for path in ("/api/status", "/api/v1/nothing", "/inbound/../api/status"):
        async with r.http.get(base + path) as resp:
            assert resp.status == 401, path
    # the console's pages (and anything else outside /api/) send a browser to the login form
    for path in ("/", "/no/such/page", "/bookings?q=x"):
        async with r.http.get(base + path, allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"].startswith("/login?next=%2F"), path
    async with r.http.get(base + "/api/status", headers={"Authorization": "Bearer not-a-token"}) as resp:
        assert resp.status == 401
    async with r.http.get(base + "/health") as resp:
        assert resp.status == 200
    async with r.http.get(base + "/metrics") as resp:
        assert resp.status == 200  # loopback (the default web.metrics_access)
    # the OTAs' endpoints keep their own auth: Ctrip answers junk with its own 400, not our 401
    async with r.http.post(base + "/inbound/ctrip", data=b"hello") as resp:
        assert resp.status == 400
    # and /api/status still answers a logged-in user
    async with r.http.get(base + "/api/status", headers=await bearer(r.d)) as resp:
        assert resp.status == 200 and {c["channel"] for c in (await resp.json())["channels"]} >= {"ctrip"}


async def test_login_session_csrf_and_logout(run):
    r = run
    base = r.d.base_url
    await make_user(r.d, "wang", "operator")
    status, body, _ = await login(r.http, base, "wang", "wrong password")
    assert status == 401 and "wrong" in body["error"]
    failed = await journal(r, "login_failed")
    assert [j.actor for j in failed] == ["user:wang"] and failed[0].reason == "wrong password"

    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as s:
        status, body, resp = await login(s, base, "wang")
        assert status == 200 and body["role"] == "operator" and body["csrf_token"]
        cookie = resp.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "channelmgr_session=" in cookie
        assert "Secure" not in cookie  # plain http on loopback: the demo on a laptop
        csrf = body["csrf_token"]
        async with s.get(f"{base}/api/v1/me") as me:
            assert (me.status, (await me.json())["auth"]) == (200, "session")
        # the session id is stored only as its digest
        sid = next(c.value for c in jar if c.key == "channelmgr_session")

        async def stored(conn):
            return (await conn.execute(select(m.web_sessions.c.session_sha256))).scalars().all()

        assert (await r.d.rt.db.read(stored)) == [accounts.digest(sid)]

        # a change by cookie needs the CSRF header
        async def conflict_id(conn):
            return await r.ledger.raise_conflict(conn, kind="drift", summary="test drift", channel="ctrip")

        cid = await r.d.rt.db.write(conflict_id)
        url = f"{base}/api/v1/conflicts/{cid}/resolve"
        async with s.post(url, json={"note": "checked"}) as resp:
            assert resp.status == 403 and (await resp.json())["field"] == "X-CSRF-Token"
        async with s.post(url, json={"note": "checked"}, headers={"X-CSRF-Token": "forged"}) as resp:
            assert resp.status == 403
        async with s.post(url, json={"note": "checked"}, headers={"X-CSRF-Token": csrf}) as resp:
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["resolved_by"] == "wang"
        async with s.post(f"{base}/api/v1/logout", headers={"X-CSRF-Token": csrf}) as resp:
            assert resp.status == 200
        async with s.get(f"{base}/api/v1/me", headers={"Cookie": f"channelmgr_session={sid}"}) as me:
            assert me.status == 401  # the old session id is gone from the server, not only the browser
    assert [j.actor for j in await journal(r, "login")] == ["user:wang"]
    assert [j.actor for j in await journal(r, "logout")] == ["user:wang"]
    # the journal API: the logins to everyone, where they came from to admins only
    for role, remote in (("operator", None), ("admin", "127.0.0.1")):
        async with r.http.get(f"{base}/api/v1/journal", headers=await bearer(r.d, role)) as resp:
            rows = [j for j in (await resp.json())["rows"] if j["entity"] == "user" and j["action"] == "login"]
        assert [j["actor"] for j in rows] == ["user:wang"]
        assert (rows[0]["after"] or {}).get("remote") == remote


async def test_a_bearer_token_needs_no_csrf_and_ends_with_the_user(run_sqlite):
    r = run_sqlite
    headers = await bearer(r.d, "operator", "pms")

    async def conflict_id(conn):
        return await r.ledger.raise_conflict(conn, kind="drift", summary="test drift", channel="ctrip")

    cid = await r.d.rt.db.write(conflict_id)
    async with r.http.post(f"{r.d.base_url}/api/v1/conflicts/{cid}/resolve", json={"note": "ok"},
                           headers=headers) as resp:
        assert resp.status == 200
    async with r.http.get(f"{r.d.base_url}/api/v1/users", headers=headers) as resp:
        assert resp.status == 403  # users are the admin's
    async with r.http.get(f"{r.d.base_url}/api/v1/users", headers=await bearer(r.d, "admin")) as resp:
        assert resp.status == 200
        assert {(u["name"], u["role"], u["has_token"]) for u in (await resp.json())["users"]} == {
            ("pms", "operator", True), ("t-admin", "admin", True)}
    await accounts.disable_user(r.d.rt.db, "pms", actor="test")
    async with r.http.get(f"{r.d.base_url}/api/v1/me", headers=headers) as resp:
        assert resp.status == 401


async def test_failed_logins_are_rate_limited_per_name_and_address(run_sqlite):
    r = run_sqlite
    base = r.d.base_url
    await make_user(r.d, "li", "viewer")
    for _ in range(5):
        status, _, _ = await login(r.http, base, "li", "guess")
        assert status == 401
    status, body, resp = await login(r.http, base, "li")  # even the right password, for now
    assert status == 429 and int(resp.headers["Retry-After"]) >= 1 and "try again" in body["error"]
    status, _, _ = await login(r.http, base, "someone-else")  # the same address
    assert status == 429
    assert len(await journal(r, "login_failed")) == 5  # refused before checking: not journaled again


def _cli(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "channelmgr", "--config", str(tmp_path / "cli.yaml"), *args],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)


async def test_users_commands_and_a_token_from_the_cli(run, tmp_path):
    r = run
    (tmp_path / "cli.yaml").write_text(json.dumps({"database": {"url": r.d.config.database.url},
                                                   "security": {"data_key_file": str(tmp_path / "data.key")}}))
    out = await asyncio.to_thread(_cli, tmp_path, "users", "add", "pms", "--role", "revenue")
    assert out.returncode == 0, out.stderr
    password = out.stdout.split("password: ", 1)[1].split()[0]
    status, body, _ = await login(r.http, r.d.base_url, "pms", password)
    assert status == 200 and body["role"] == "revenue"
    out = await asyncio.to_thread(_cli, tmp_path, "users", "token", "pms")
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    async with r.http.get(f"{r.d.base_url}/api/v1/status", headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 200
        assert {c["channel"] for c in (await resp.json())["channels"]} == {"booking", "ctrip", "fliggy", "meituan"}

    async def stored(conn):
        return (await conn.execute(select(m.api_tokens.c.token_sha256))).scalars().all()

    assert await r.d.rt.db.read(stored) == [accounts.digest(token)]  # only the digest is kept
    out = await asyncio.to_thread(_cli, tmp_path, "users", "list", "--json")
    assert [(u["name"], u["role"], u["has_token"]) for u in json.loads(out.stdout)] == [("pms", "revenue", True)]
    out = await asyncio.to_thread(_cli, tmp_path, "users", "add", "pms", "--role", "viewer")
    assert out.returncode == 1 and "already" in out.stderr
    out = await asyncio.to_thread(_cli, tmp_path, "users", "add", "x", "--role", "boss")
    assert out.returncode == 2
    out = await asyncio.to_thread(_cli, tmp_path, "users", "disable", "pms")
    assert out.returncode == 0, out.stderr
    async with r.http.get(f"{r.d.base_url}/api/v1/status", headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 401
    status, _, _ = await login(r.http, r.d.base_url, "pms", password)
    assert status == 401
    rows = [j for j in await r.ledger.journal(limit=50) if j["entity"] == "user"]
    assert {j["action"] for j in rows} >= {"add", "token", "login", "disable", "login_failed"}
    assert all(j["actor"].startswith("cli:") for j in rows if j["action"] in ("add", "token", "disable"))


async def test_the_demo_creates_an_admin_with_a_password_printed_once(tmp_path, capsys):
    from channelmgr.config import DemoConfig
    from channelmgr.daemon import Daemon
    from tests.sync.harness import Running, fast_push_settings, make_config

    cfg = make_config(tmp_path, horizon_days=30)
    cfg.demo = DemoConfig(synthetic_guests=True, bookings_per_minute=0)
    d = Daemon(cfg, push_settings=fast_push_settings(30))
    await d.start()
    r = Running(d)
    try:
        err = capsys.readouterr().err
        assert "log in as admin with the password " in err
        password = err.split("the password ", 1)[1].split()[0]
        status, body, _ = await login(r.http, d.base_url, "admin", password)
        assert status == 200 and body["role"] == "admin"
        assert PASSWORD != password
    finally:
        await r.close()
    d = Daemon(cfg, push_settings=fast_push_settings(30))
    await d.start()
    try:
        assert "the password" not in capsys.readouterr().err  # once: the admin exists now
        await asyncio.sleep(0.3)  # let its background tasks start before stopping it
    finally:
        await d.stop("test done")
