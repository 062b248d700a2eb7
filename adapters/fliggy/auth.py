"""TOP request signing and timestamps (../shared/protocols/fliggy.md, "Signature").

1. every system and business parameter except ``sign``; 2. sorted by name (byte order);
3. ``name1value1name2value2...`` with no separators; 4. ``md5``: upper(hex(md5(secret + s +
secret))), ``hmac``: upper(hex(hmac_md5(key=secret, s))), ``hmac-sha256`` the same with
SHA-256. Text is UTF-8.

Credentials (``key`` = app_key, ``secret``, ``session``) are read from the settings at each
call, never at construction: the daemon builds the adapter before it reads the secrets.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

from adapters.base.errors import AuthError

SIGN_METHODS = ("md5", "hmac", "hmac-sha256")
GMT8 = timezone(timedelta(hours=8), "GMT+8")
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"


def sign_string(params: Mapping[str, str]) -> str:
    """The text that is signed: sorted name/value pairs, ``sign`` left out."""
    names = sorted((k for k in params if k != "sign"), key=lambda k: k.encode("utf-8"))
    return "".join(f"{k}{params[k]}" for k in names)


def sign(params: Mapping[str, str], secret: str, method: str = "hmac-sha256") -> str:
    s = sign_string(params).encode("utf-8")
    key = secret.encode("utf-8")
    if method == "md5":
        digest = hashlib.md5(key + s + key).hexdigest()
    elif method == "hmac":
        digest = hmac.new(key, s, hashlib.md5).hexdigest()
    elif method == "hmac-sha256":
        digest = hmac.new(key, s, hashlib.sha256).hexdigest()
    else:
        raise ValueError(f"fliggy: sign_method must be one of {', '.join(SIGN_METHODS)}, not {method!r}")
    return digest.upper()


def timestamp(now: datetime | None = None) -> str:
    """``yyyy-MM-dd HH:mm:ss`` in GMT+8, what TOP expects whatever our own zone."""
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    return now.astimezone(GMT8).strftime(TIMESTAMP_FORMAT)


def credentials(creds: Mapping[str, str]) -> tuple[str, str, str]:
    missing = [n for n in ("key", "secret", "session") if not creds.get(n)]
    if missing:
        raise AuthError(f"fliggy credentials lack {', '.join(missing)} (set them in the channel's credentials)")
    return creds["key"], creds["secret"], creds["session"]


def signed_params(method: str, business: Mapping[str, str], creds: Mapping[str, str], *,
                  sign_method: str = "hmac-sha256", now: datetime | None = None,
                  simplify: bool = True) -> dict[str, str]:
    """System parameters + business parameters + ``sign``, all strings, ready to form-encode."""
    app_key, secret, session = credentials(creds)
    params = {
        "method": method, "app_key": app_key, "session": session, "timestamp": timestamp(now),
        "v": "2.0", "sign_method": sign_method, "format": "json",
        "simplify": "true" if simplify else "false",
    }
    params.update({k: str(v) for k, v in business.items()})
    params["sign"] = sign(params, secret, sign_method)
    return params
