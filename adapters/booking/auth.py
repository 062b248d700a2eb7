"""Booking.com authentication: HTTP Basic (a machine account) or a one-hour bearer token.

Credentials are read from ``settings.credentials`` at each call, not at construction: the
daemon builds the adapter before it has read the secrets. Token auth exchanges
``key``/``secret`` (client_id/client_secret) for a JWT that lives an hour; Booking.com
issues at most 30 an hour, so a token is reused until shortly before it expires and the
adapter refuses to ask for a 31st within the hour (RateLimitedError with the wait)
rather than be locked out.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping

from adapters.base.errors import AuthError, RateLimitedError

TokenFetcher = Callable[[str, str], Awaitable[tuple[str, float]]]
HOUR = 3600.0
REFRESH_MARGIN = 120.0  # seconds before expiry when a token is replaced


def _need(credentials: Mapping[str, str], *names: str) -> list[str]:
    missing = [n for n in names if not credentials.get(n)]
    if missing:
        raise AuthError(f"booking credentials lack {', '.join(missing)} (set them in the channel's credentials)")
    return [credentials[n] for n in names]


class BasicAuth:
    """``Authorization: Basic`` from ``username``/``password``."""

    kind = "basic"

    def __init__(self, credentials: Mapping[str, str]):
        self.credentials = credentials

    async def headers(self, fetch: TokenFetcher) -> dict[str, str]:
        user, password = _need(self.credentials, "username", "password")
        raw = f"{user}:{password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}

    def invalidate(self) -> bool:
        """Nothing to refresh: a 401 with Basic is final."""
        return False

    def secrets(self) -> list[str]:
        return []


class TokenAuth:
    """``Authorization: Bearer <jwt>`` from ``key``/``secret``, within 30 tokens an hour."""

    kind = "token"

    def __init__(self, credentials: Mapping[str, str], *, tokens_per_hour: int = 30,
                 clock: Callable[[], float] = time.monotonic):
        self.credentials = credentials
        self.tokens_per_hour = tokens_per_hour
        self.clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self._issued: deque[float] = deque()
        self._lock = asyncio.Lock()

    @property
    def issued_last_hour(self) -> int:
        self._forget_old()
        return len(self._issued)

    def _forget_old(self) -> None:
        now = self.clock()
        while self._issued and now - self._issued[0] >= HOUR:
            self._issued.popleft()

    async def headers(self, fetch: TokenFetcher) -> dict[str, str]:
        async with self._lock:
            if self._token is None or self.clock() >= self._expires - REFRESH_MARGIN:
                client_id, secret = _need(self.credentials, "key", "secret")
                self._forget_old()
                if len(self._issued) >= self.tokens_per_hour:
                    wait = HOUR - (self.clock() - self._issued[0])
                    raise RateLimitedError(
                        f"{self.tokens_per_hour} Booking.com tokens were issued in the last hour; "
                        f"not asking for another for {wait:.0f}s", retry_after=max(1.0, wait))
                token, lifetime = await fetch(client_id, secret)
                self._issued.append(self.clock())
                self._token, self._expires = token, self.clock() + lifetime
            return {"Authorization": f"Bearer {self._token}"}

    def invalidate(self) -> bool:
        """Drop the token after a 401; True when a fresh one may be tried."""
        had = self._token is not None
        self._token = None
        return had

    def secrets(self) -> list[str]:
        return [self._token] if self._token else []


def make_auth(kind: str, credentials: Mapping[str, str], tokens_per_hour: int = 30) -> BasicAuth | TokenAuth:
    if kind == "token":
        return TokenAuth(credentials, tokens_per_hour=tokens_per_hour)
    return BasicAuth(credentials)
