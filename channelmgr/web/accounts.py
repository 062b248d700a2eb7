"""Accounts: users with roles, API tokens, browser sessions (issue 11).

Roles are ordered: viewer < operator < revenue < admin; a role may do what every role
below it may. Passwords are argon2 hashes (argon2-cffi), hashed and checked in a worker
thread, never on the event loop. API tokens and session ids are random 32-byte values
shown once and stored only as their sha256. Every login, failed login and change is a
journal row attributed to its user (``user:NAME``) in the same transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from channelmgr.ledger import models as m
from channelmgr.ledger.db import Database
from channelmgr.ledger.ledger import Ledger, new_correlation_id
from channelmgr.ledger.types import LedgerError

ROLES = ("viewer", "operator", "revenue", "admin")
RANK = {r: i for i, r in enumerate(ROLES)}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
TOKEN_PREFIX = "cmt_"

_hasher = None


def _ph():
    global _hasher
    if _hasher is None:
        from argon2 import PasswordHasher

        _hasher = PasswordHasher()
    return _hasher


# a hash to check against when the name is unknown, so both answers take as long
_DUMMY_HASH: str | None = None


def _hash_sync(password: str) -> str:
    return _ph().hash(password)


def _verify_sync(hashed: str | None, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    global _DUMMY_HASH
    if hashed is None:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = _ph().hash(secrets.token_urlsafe(16))
        hashed, password = _DUMMY_HASH, password + "\0never"
    try:
        return _ph().verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hash_sync, password)


async def verify_password(hashed: str | None, password: str) -> bool:
    return await asyncio.to_thread(_verify_sync, hashed, password)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def generate_password() -> str:
    return secrets.token_urlsafe(15)


def now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(dt: datetime | None) -> datetime | None:
    return None if dt is None else (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc))


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str

    def may(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]

    @property
    def actor(self) -> str:
        return actor_of(self.name)

    @property
    def sees_guest_data(self) -> bool:
        return self.may("operator")


def actor_of(name: str) -> str:
    return f"user:{name}"[:64]


def check_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise LedgerError(f"a user name is 1-64 letters, digits or . _ @ -, starting with a letter or digit, "
                          f"not {name!r}")
    return name


def check_role(role: str) -> str:
    if role not in RANK:
        raise LedgerError(f"there is no role {role!r}; the roles are {', '.join(ROLES)}")
    return role


def _journal(conn: AsyncConnection, actor: str, name: str, action: str, before: Any = None, after: Any = None,
             reason: str | None = None):
    return Ledger.add_journal(conn, [{
        "at": now(), "actor": actor[:64], "property_id": None, "entity": "user", "entity_key": {"user": name},
        "action": action, "before": before, "after": after, "reason": reason,
        "correlation_id": new_correlation_id()}])


async def _user_row(conn: AsyncConnection, name: str):
    return (await conn.execute(select(m.users).where(m.users.c.name == name))).first()


async def add_user(db: Database, name: str, role: str, password: str, *, actor: str) -> User:
    check_name(name)
    check_role(role)
    if len(password) < 8:
        raise LedgerError("a password is at least 8 characters")
    hashed = await hash_password(password)

    async def tx(conn):
        if await _user_row(conn, name) is not None:
            raise LedgerError(f"there is already a user {name!r}")
        t = now()
        res = await conn.execute(m.users.insert().values(name=name, role=role, password_hash=hashed, disabled=False,
                                                         created_at=t, updated_at=t))
        await _journal(conn, actor, name, "add", None, {"role": role})
        return User(res.inserted_primary_key[0], name, role)

    try:
        return await db.write(tx)
    except IntegrityError:  # another process added the same name just now (PostgreSQL)
        raise LedgerError(f"there is already a user {name!r}") from None


async def ensure_admin(db: Database, *, actor: str = "demo") -> str | None:
    """The demo's `admin`: created with a random password (returned, to print once) when
    the ledger has no admin yet; None when there is one."""
    async def q(conn):
        return (await conn.execute(select(m.users.c.id).where(m.users.c.role == "admin").limit(1))).first()

    if await db.read(q) is not None:
        return None
    password = generate_password()
    try:
        await add_user(db, "admin", "admin", password, actor=actor)
    except LedgerError:  # a user named admin with another role: leave it
        return None
    return password


async def list_users(db: Database) -> list[dict[str, Any]]:
    async def q(conn):
        tokens = dict((await conn.execute(
            select(m.api_tokens.c.user_id, m.api_tokens.c.id).where(m.api_tokens.c.revoked_at.is_(None)))).all())
        rows = (await conn.execute(select(m.users).order_by(m.users.c.name))).all()
        return [{"name": r.name, "role": r.role, "disabled": bool(r.disabled),
                 "created_at": _aware(r.created_at).isoformat(), "has_token": r.id in tokens} for r in rows]

    return await db.read(q)


async def disable_user(db: Database, name: str, *, actor: str) -> None:
    async def tx(conn):
        r = await _user_row(conn, name)
        if r is None:
            raise LedgerError(f"there is no user {name!r}")
        if r.disabled:
            return
        t = now()
        await conn.execute(update(m.users).where(m.users.c.id == r.id).values(disabled=True, updated_at=t))
        await conn.execute(update(m.api_tokens).where(m.api_tokens.c.user_id == r.id,
                                                      m.api_tokens.c.revoked_at.is_(None)).values(revoked_at=t))
        await conn.execute(m.web_sessions.delete().where(m.web_sessions.c.user_id == r.id))
        await _journal(conn, actor, name, "disable", {"disabled": False}, {"disabled": True})

    await db.write(tx)


async def issue_token(db: Database, name: str, *, actor: str) -> str:
    """A new API token for ``name`` (shown once; only its sha256 is kept)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)

    async def tx(conn):
        r = await _user_row(conn, name)
        if r is None:
            raise LedgerError(f"there is no user {name!r}")
        if r.disabled:
            raise LedgerError(f"the user {name!r} is disabled")
        await conn.execute(m.api_tokens.insert().values(user_id=r.id, token_sha256=digest(token), created_at=now()))
        await _journal(conn, actor, name, "token", None, {"token": "issued"})

    await db.write(tx)
    return token


async def user_for_token(db: Database, token: str) -> User | None:
    if not token or len(token) > 200:
        return None
    h = digest(token)

    async def q(conn):
        return (await conn.execute(
            select(m.users.c.id, m.users.c.name, m.users.c.role)
            .join(m.api_tokens, m.api_tokens.c.user_id == m.users.c.id)
            .where(m.api_tokens.c.token_sha256 == h, m.api_tokens.c.revoked_at.is_(None),
                   m.users.c.disabled.is_(False)))).first()

    r = await db.read(q)
    return User(r.id, r.name, r.role) if r else None


async def login(db: Database, name: str, password: str, *, remote: str | None,
                session_hours: float) -> tuple[User, str, str] | None:
    """Check the password; on success a new session (its id and CSRF token, shown once).
    Both outcomes are journaled, attributed to the name given."""
    async def q(conn):
        return await _user_row(conn, name)

    r = await db.read(q) if NAME_RE.match(name or "") else None
    ok = await verify_password(r.password_hash if r is not None else None, password)
    ok = ok and r is not None and not r.disabled
    sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)

    async def tx(conn):
        t = now()
        if not ok:
            why = "unknown user" if r is None else ("disabled" if r.disabled else "wrong password")
            await _journal(conn, actor_of(name or "?"), (name or "?")[:64], "login_failed", None,
                           {"remote": remote}, why)
            return None
        await conn.execute(m.web_sessions.delete().where(m.web_sessions.c.expires_at < t))
        await conn.execute(m.web_sessions.insert().values(
            session_sha256=digest(sid), csrf_sha256=digest(csrf), user_id=r.id, created_at=t,
            expires_at=t + timedelta(hours=session_hours), remote=(remote or "")[:64] or None))
        await _journal(conn, actor_of(name), name, "login", None, {"remote": remote})
        return User(r.id, r.name, r.role), sid, csrf

    return await db.write(tx)


async def session_user(db: Database, sid: str) -> tuple[User, str] | None:
    """The user of a live session and its CSRF digest."""
    if not sid or len(sid) > 200:
        return None
    h = digest(sid)

    async def q(conn):
        return (await conn.execute(
            select(m.users.c.id, m.users.c.name, m.users.c.role, m.web_sessions.c.csrf_sha256,
                   m.web_sessions.c.expires_at)
            .join(m.web_sessions, m.web_sessions.c.user_id == m.users.c.id)
            .where(m.web_sessions.c.session_sha256 == h, m.users.c.disabled.is_(False)))).first()

    r = await db.read(q)
    if r is None or _aware(r.expires_at) <= now():
        return None
    return User(r.id, r.name, r.role), r.csrf_sha256


async def logout(db: Database, sid: str, user: User) -> None:
    async def tx(conn):
        await conn.execute(m.web_sessions.delete().where(m.web_sessions.c.session_sha256 == digest(sid)))
        await _journal(conn, user.actor, user.name, "logout")

    await db.write(tx)
