"""One funnel for all HTTP an adapter does.

Every call goes through :meth:`HttpClient.call`: it times the call, turns transport
failures into RetriableError, lets the adapter read the OTA's answer (``interpret``), and
reports one :class:`Exchange` to the observer (the sync log) whatever happened, with the
request and response redacted: credentials replaced by ***, guest data masked.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import deque
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Awaitable, Callable, Mapping, TypeVar

import aiohttp

from adapters.base.contract import ChannelSettings, Exchange, ExchangeObserver
from adapters.base.errors import (
    AuthError,
    ChannelError,
    FatalError,
    RateLimitedError,
    RetriableError,
)
from channelmgr.security import GuestFields, mask_body

T = TypeVar("T")
LOG_BODY_LIMIT = 8192
REDACT_MARGIN = 512


@dataclass
class Reply:
    """An HTTP answer; ``interpret`` may fill in request_id, result and note, and
    ``extra["items"]``: the number of items that came back, for the sync log."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    duration_ms: float
    request_id: str | None = None
    result: str = "ok"  # ok | partial | rejected
    note: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: either a number or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from datetime import datetime, timezone

        return max(0.0, (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return None


def classify_status(reply: Reply, *, text: str | None = None, code: str | None = None) -> None:
    """Raise the right ChannelError for a non-2xx answer (generic HTTP semantics)."""
    status = reply.status
    if status < 400:
        return
    text = text or f"HTTP {status}: {reply.text[:200]}"
    kw = {"code": code, "status": status, "request_id": reply.request_id}
    if status == 429:
        raise RateLimitedError(text, retry_after=retry_after_seconds(reply.headers.get("Retry-After")), **kw)
    if status >= 500 or status in (408, 409, 425):
        raise RetriableError(text, **kw)
    if status == 401:
        raise AuthError(text, **kw)
    raise FatalError(text, **kw)


# ---- inbound: bounded reading, and what is refused before it is stored ------------------

# An OTA booking message is kilobytes; 256 KB leaves room for a large group booking.
INBOUND_MAX_BYTES = 256 * 1024
REFUSED_SAMPLES = 20
REFUSED_SAMPLE_CHARS = 2048


class BodyTooLarge(Exception):
    def __init__(self, size: int, limit: int):
        super().__init__(f"the body is more than {limit} bytes" + (f" ({size})" if size > limit else ""))
        self.size, self.limit = size, limit


async def read_body(request: Any, limit: int = INBOUND_MAX_BYTES) -> bytes:
    """An inbound request's body, read with a cap: BodyTooLarge as soon as more than
    ``limit`` bytes are declared (Content-Length) or have arrived, never after reading all."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise BodyTooLarge(declared, limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(65536)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


class Refusals:
    """Inbound calls refused before anything was stored (not the OTA's, unreadable, too
    large, replayed): counted by reason, with the last few kept (cut to 2 KB, masked) for
    operators. In memory: the daemon shows it on /api/status; each is also a sync-log row."""

    def __init__(self, keep: int = REFUSED_SAMPLES):
        self.total = 0
        self.by_reason: dict[str, int] = {}
        self.samples: deque[dict[str, Any]] = deque(maxlen=keep)

    def note(self, reason: str, *, detail: str | None = None, sample: str | None = None,
             operation: str | None = None, peer: str | None = None) -> None:
        self.total += 1
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
        from datetime import datetime, timezone

        self.samples.append({"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "reason": reason,
                             "detail": (detail or "")[:300] or None, "operation": operation, "peer": peer,
                             "sample": sample})

    def snapshot(self) -> dict[str, Any]:
        return {"total": self.total, "by_reason": dict(self.by_reason), "last": list(self.samples)}


MAX_RESPONSE_BYTES = 16 * 1024 ** 2
PARSE_IN_THREAD_BYTES = 64 * 1024


async def _read_bounded(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The answer's body, refused (not retried) once it passes ``limit`` bytes."""
    declared = resp.content_length
    if declared is not None and declared > limit:
        raise FatalError(f"the answer is {declared} bytes, more than the {limit} this channel accepts")
    chunks, size = [], 0
    async for chunk in resp.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise FatalError(f"the answer passed {limit} bytes, more than this channel accepts")
        chunks.append(chunk)
    return b"".join(chunks)


class HttpClient:
    def __init__(self, settings: ChannelSettings, observer: ExchangeObserver | None,
                 redact: Callable[[str], str] | None = None, guest_fields: GuestFields | None = None):
        self.settings = settings
        self.observer = observer
        self._session: aiohttp.ClientSession | None = None
        self._extra_redact = redact
        # where this OTA's messages carry names and free text (the adapter knows its format)
        self.guest_fields = guest_fields
        self.refused = Refusals()
        # an OTA's answer is bounded too (a month of read-back is well under a megabyte)
        self.max_response_bytes = int(settings.options.get("max_response_bytes", MAX_RESPONSE_BYTES))

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_seconds),
                connector=aiohttp.TCPConnector(limit=64, ttl_dns_cache=300),
            )
        return self._session

    def url(self, path: str) -> str:
        if path.startswith("http://") or path.startswith("https://"):
            return path
        return self.settings.endpoint.rstrip("/") + "/" + path.lstrip("/")

    def redact(self, text: str | bytes | None, limit: int = LOG_BODY_LIMIT) -> str | None:
        """Credentials out, guest data masked, size bounded: safe for the sync log.

        The body is cut first and only the cut is read (the part kept plus a margin, so a
        secret, an e-mail or a name element across the cut is still recognised whole): the
        cost is bounded by ``limit`` whatever the size of the body, a few milliseconds at
        most, so it may run in the event loop.
        """
        if text is None:
            return None
        total = len(text)
        window = text[:limit + REDACT_MARGIN]
        if isinstance(window, bytes):
            window = window.decode("utf-8", errors="replace")
        for secret in self.settings.credentials.values():
            if secret and len(secret) >= 4:
                window = window.replace(secret, "***")
        if self._extra_redact:
            window = self._extra_redact(window)
        window = mask_body(window, self.guest_fields)
        # PostgreSQL text holds no NUL: one in a body would lose the whole sync-log batch
        window = window.replace("\x00", "\ufffd")
        if total > limit or len(window) > limit:
            unit = "bytes" if isinstance(text, bytes) else "characters"
            window = window[:limit] + f"... [{total} {unit} in all]"
        return window

    def sample(self, raw: bytes | None) -> str | None:
        """What is kept of a refused (unauthenticated) body: its first 2 KB, masked."""
        return self.redact(raw, limit=REFUSED_SAMPLE_CHARS) if raw else None

    async def report(self, exchange: Exchange) -> None:
        if self.observer is None:
            return
        res = self.observer(exchange)
        if inspect.isawaitable(res):
            await res

    async def call(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        interpret: Callable[[Reply], T | Awaitable[T]],
        hotel: str | None = None,
        items: int = 0,
        data: bytes | str | Mapping[str, str] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        log_request: str | None = None,
    ) -> T:
        """Send one request; ``interpret`` reads the answer or raises a ChannelError."""
        ex = Exchange(channel=self.settings.name, operation=operation, hotel=hotel, items=items)
        if log_request is None:
            if isinstance(data, (bytes, str)):
                log_request = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
            elif isinstance(data, Mapping):
                log_request = "&".join(f"{k}={v}" for k, v in data.items())
            elif json_body is not None:
                import json

                log_request = json.dumps(json_body, ensure_ascii=False)
        ex.request = self.redact(log_request)
        started = time.perf_counter()
        reply: Reply | None = None
        try:
            try:
                async with self.session.request(method, self.url(path), data=data, json=json_body,
                                                headers=headers, params=params) as resp:
                    body = await _read_bounded(resp, self.max_response_bytes)
                    reply = Reply(resp.status, dict(resp.headers), body,
                                  (time.perf_counter() - started) * 1000)
            except asyncio.TimeoutError:
                raise RetriableError(f"no answer within {self.settings.timeout_seconds:g}s") from None
            except aiohttp.ClientError as e:
                raise RetriableError(f"connection failed: {e.__class__.__name__}: {e}") from None
            ex.status = reply.status
            ex.response = self.redact(reply.body)
            if len(reply.body) > PARSE_IN_THREAD_BYTES and not inspect.iscoroutinefunction(interpret):
                value = await asyncio.to_thread(interpret, reply)  # a large answer: parsed off the loop
            else:
                value = interpret(reply)
            if inspect.isawaitable(value):
                value = await value
            ex.result = reply.result
            ex.request_id = reply.request_id
            if "items" in reply.extra:  # what came back (a pull), counted by ``interpret``
                ex.items = int(reply.extra["items"])
            # a note on a successful call is not an error; on partial/rejected it explains why
            ex.error = self.redact(reply.note) if reply.result != "ok" else None
            return value  # type: ignore[return-value]
        except ChannelError as e:
            ex.result = ("rate_limited" if isinstance(e, RateLimitedError)
                         else "retry" if e.retriable else "failed")
            ex.error = self.redact(str(e))
            ex.request_id = ex.request_id or e.request_id or (reply.request_id if reply else None)
            raise
        except Exception as e:  # a bug or an unreadable answer: never retried blindly
            ex.result = "failed"
            ex.error = self.redact(f"{e.__class__.__name__}: {e}")
            raise
        finally:
            ex.duration_ms = (time.perf_counter() - started) * 1000
            await self.report(ex)

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
