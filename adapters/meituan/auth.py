"""Meituan request signing (modelled on the public Meituan open platforms), pluggable.

:class:`MwsSigner` (the default) sends three headers::

    Date: <RFC 1123 GMT>
    PartnerId: <partner id>
    Authorization: MWS <appKey>:<base64(hmac_sha1(appSecret, "<METHOD> <path>\\n<Date>"))>

and checks the same on the notices Meituan sends us.

What the signature covers (the protocol note, /work/shared/protocols/meituan.md): the
method, the path and the ``Date`` header, nothing else; not the body, not the query. So
whoever sees one signed notice can send any body under its headers while its Date is
within the skew (5 minutes). :class:`ReplayCache` closes that: a (appKey, Date, signature)
is accepted for one body only, for as long as its Date is acceptable. The same body again
is a redelivery of the same notice (idempotent, accepted); another body under the same
headers is refused. A consequence of the protocol, not of the cache: two different notices
to the same path within the same second carry the same headers, so the cache refuses the
second; the inbound route then confirms it by querying the order from Meituan rather than
refusing it (adapters/meituan/inbound.py), so intake is not capped at one notice a second.
The details beyond the note (header names, PartnerId check, the skew, the answer codes)
are modelled on the public Meituan open platforms, not taken from a contract. :class:`ParamsSigner` is the
hotel-distribution API's variant (sorted ``k=v&k=v`` parameters with ``nonce`` and a
10-digit ``timestamp``, HMAC-SHA1, Base64), for a partner whose contract names it
(``options.signer: params``); the sandbox speaks MWS only.

Credentials are read from the mapping at every call (the daemon reads secrets after it
builds the adapter): ``username`` = PartnerId, ``key`` = appKey, ``secret`` = appSecret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from typing import Protocol

from adapters.base.errors import AuthError


@dataclass
class Signed:
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


class Signer(Protocol):
    """Signs one outgoing request; verifies one incoming notice (None = good, else why not)."""

    def sign(self, method: str, path: str, body: bytes) -> Signed: ...

    def verify(self, method: str, paths: list[str], headers: Mapping[str, str], body: bytes) -> str | None: ...


def _need(credentials: Mapping[str, str], *names: str) -> list[str]:
    missing = [n for n in names if not credentials.get(n)]
    if missing:
        raise AuthError(f"meituan credentials lack {', '.join(missing)} (username = PartnerId, key = appKey, "
                        f"secret = appSecret)")
    return [credentials[n] for n in names]


def mws_string_to_sign(method: str, path: str, date_header: str) -> str:
    return f"{method.upper()} {path}\n{date_header}"


def mws_signature(secret: str, method: str, path: str, date_header: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), mws_string_to_sign(method, path, date_header).encode("utf-8"),
                      hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


class ReplayCache:
    """Signed headers seen within the skew window, each bound to the body first sent with it.

    Bounded: at most ``max_entries`` (the oldest go first; only notices whose signature
    checked out are entered, so an outsider cannot fill it); an entry lapses when its Date
    leaves the skew window, after which the Date check refuses the headers anyway."""

    def __init__(self, window_seconds: float, max_entries: int = 100_000):
        self.window = window_seconds
        self.max_entries = max_entries
        self._seen: OrderedDict[tuple[str, str, str], tuple[float, str]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def use(self, key: tuple[str, str, str], body: bytes, sent: float, now: float) -> str | None:
        """None when this use is allowed (first, or the same body again), else why not."""
        while self._seen:
            first_key, (expires, _) = next(iter(self._seen.items()))
            if expires > now and len(self._seen) < self.max_entries:
                break
            self._seen.pop(first_key)
        digest = hashlib.sha256(body).hexdigest()
        held = self._seen.get(key)
        if held is not None:
            return None if hmac.compare_digest(held[1], digest) else (
                "this signature was already used for another notice (a replay; sign each notice afresh)")
        self._seen[key] = (sent + self.window + 1.0, digest)
        return None


class MwsSigner:
    kind = "mws"

    def __init__(self, credentials: Mapping[str, str], *, clock: Callable[[], float] = time.time,
                 skew_seconds: int = 300):
        self.credentials = credentials
        self.clock = clock
        self.skew_seconds = skew_seconds
        self.replays = ReplayCache(skew_seconds)

    def sign(self, method: str, path: str, body: bytes) -> Signed:
        partner, key, secret = _need(self.credentials, "username", "key", "secret")
        date_header = formatdate(self.clock(), usegmt=True)
        return Signed(headers={
            "Date": date_header, "PartnerId": partner,
            "Authorization": f"MWS {key}:{mws_signature(secret, method, path, date_header)}"})

    def verify(self, method: str, paths: list[str], headers: Mapping[str, str], body: bytes) -> str | None:
        try:
            partner, key, secret = _need(self.credentials, "username", "key", "secret")
        except AuthError as e:
            return str(e)
        if not hmac.compare_digest(headers.get("PartnerId", "").encode(), partner.encode()):
            return "PartnerId is not ours"
        date_header = headers.get("Date", "")
        try:
            sent = parsedate_to_datetime(date_header).timestamp()
        except (TypeError, ValueError, IndexError):
            return "the Date header is missing or not an RFC 1123 date"
        if abs(self.clock() - sent) > self.skew_seconds:
            return f"the Date header is more than {self.skew_seconds}s away from our clock"
        auth = headers.get("Authorization", "")
        if not auth.startswith("MWS ") or ":" not in auth:
            return "no MWS Authorization header"
        got_key, _, got_sig = auth[4:].strip().partition(":")
        if not hmac.compare_digest(got_key.encode(), key.encode()):
            return "the appKey is not ours"
        for path in paths:
            if hmac.compare_digest(got_sig.encode(), mws_signature(secret, method, path, date_header).encode()):
                return self.replays.use((got_key, date_header, got_sig), body, sent, self.clock())
        return "the signature does not match"


def params_signature(secret: str, params: Mapping[str, str]) -> str:
    text = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sign")
    return base64.b64encode(hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha1).digest()).decode()


class ParamsSigner:
    """Sorted-parameter signing: ``partnerId``, ``appKey``, ``timestamp`` (10 digits),
    ``nonce`` and ``sign`` travel as query parameters."""

    kind = "params"

    def __init__(self, credentials: Mapping[str, str], *, clock: Callable[[], float] = time.time,
                 skew_seconds: int = 300):
        self.credentials = credentials
        self.clock = clock
        self.skew_seconds = skew_seconds

    def sign(self, method: str, path: str, body: bytes) -> Signed:
        partner, key, secret = _need(self.credentials, "username", "key", "secret")
        params = {"partnerId": partner, "appKey": key, "timestamp": str(int(self.clock())),
                  "nonce": secrets.token_hex(8)}
        params["sign"] = params_signature(secret, params)
        return Signed(params=params)

    def verify(self, method: str, paths: list[str], headers: Mapping[str, str], body: bytes) -> str | None:
        return "parameter-signed notices are not modelled; use the mws signer for inbound"


def make_signer(kind: str, credentials: Mapping[str, str], skew_seconds: int = 300) -> MwsSigner | ParamsSigner:
    if kind == "params":
        return ParamsSigner(credentials, skew_seconds=skew_seconds)
    return MwsSigner(credentials, skew_seconds=skew_seconds)
