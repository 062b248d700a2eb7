"""Failures, classified once (DESIGN.md invariant 6).

Every adapter turns every failure into one of these, so the sync engine decides what to do
from the type alone: retry with backoff, wait the OTA's delay, or stop and tell a person.
"""

from __future__ import annotations


class ChannelError(Exception):
    """A call to an OTA failed. ``code``/``text`` are the OTA's own, when it gave them."""

    retriable = False

    def __init__(self, text: str, *, code: str | None = None, status: int | None = None,
                 request_id: str | None = None):
        super().__init__(text)
        self.text = text
        self.code = code
        self.status = status
        self.request_id = request_id

    def __str__(self) -> str:
        parts = [self.text]
        if self.code:
            parts.append(f"code {self.code}")
        if self.status:
            parts.append(f"HTTP {self.status}")
        if self.request_id:
            parts.append(f"request id {self.request_id}")
        return " | ".join(parts)


class RetriableError(ChannelError):
    """Try again later: 5xx, timeouts, connection resets, Ctrip 448, Fliggy isp.*."""

    retriable = True


class RateLimitedError(RetriableError):
    """The OTA asked us to slow down (HTTP 429, Fliggy 7/8); wait ``retry_after`` seconds."""

    def __init__(self, text: str, *, retry_after: float | None = None, **kw):
        super().__init__(text, **kw)
        self.retry_after = retry_after


class FatalError(ChannelError):
    """Retrying will not help: authentication, schema, unknown room or hotel. A person must act."""


class AuthError(FatalError):
    """Credentials refused."""


class ParseError(Exception):
    """A message from an OTA could not be read. Kept in the inbox with this reason."""
