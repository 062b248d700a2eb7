"""Logging in to a running daemon in tests: users made with the same functions the CLI uses."""

from __future__ import annotations

from typing import Any

from channelmgr.web import accounts

PASSWORD = "correct horse battery"


async def make_user(daemon, name: str, role: str, password: str = PASSWORD) -> None:
    await accounts.add_user(daemon.rt.db, name, role, password, actor="test")


async def bearer(daemon, role: str = "viewer", name: str | None = None) -> dict[str, str]:
    """Authorization headers of a new user with ``role`` (an API token, as `users token` makes)."""
    name = name or f"t-{role}"
    users = {u["name"] for u in await accounts.list_users(daemon.rt.db)}
    if name not in users:
        await make_user(daemon, name, role)
    token = await accounts.issue_token(daemon.rt.db, name, actor="test")
    return {"Authorization": f"Bearer {token}"}


async def login(http, base: str, name: str, password: str = PASSWORD) -> tuple[int, dict[str, Any], Any]:
    async with http.post(f"{base}/api/v1/login", json={"name": name, "password": password}) as r:
        return r.status, await r.json(), r
