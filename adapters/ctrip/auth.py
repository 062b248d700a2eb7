"""Ctrip authentication: no request signing, credentials inside every message.

Both directions carry ``POS/Source/RequestorID @ID @MessagePassword`` (the note); the
receiver checks them. Ours are ``username`` (RequestorID/@ID) and ``password``
(MessagePassword) in ``settings.credentials``, read at each call, never at construction:
the daemon builds the adapter before it has read the secrets.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from adapters.base.errors import AuthError


def requestor(credentials: Mapping[str, str]) -> tuple[str, str]:
    """(RequestorID/@ID, @MessagePassword) for an outgoing message; AuthError when missing."""
    missing = [n for n in ("username", "password") if not credentials.get(n)]
    if missing:
        raise AuthError(f"ctrip credentials lack {', '.join(missing)} (set them in the channel's credentials)")
    return credentials["username"], credentials["password"]


def _same(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def inbound_allowed(credentials: Mapping[str, str], requestor_id: str | None, password: str | None) -> bool:
    """Whether a pushed message's RequestorID/@ID and @MessagePassword are ours (constant time).

    Without configured credentials nothing is accepted.
    """
    want_id, want_pw = credentials.get("username"), credentials.get("password")
    ok_id = _same(requestor_id, want_id)
    ok_pw = _same(password, want_pw)
    return ok_id and ok_pw
