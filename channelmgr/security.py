"""Guest data protection (PIPL): encryption at rest and masking in logs.

Guest names, phones, e-mails, ID numbers, special requests and the raw OTA messages that
carry them are stored only as AES-256-GCM ciphertext. The key comes from the environment
variable named in config (``CHANNELMGR_DATA_KEY``, 32 bytes base64) or from a key file
created on first start with mode 0600. Losing the key loses the guest data, not the
bookings: stays, amounts and ids stay readable.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_PREFIX = "v1:"
_AAD = b"channelmgr:guest-data:v1"


class DataKeyError(Exception):
    pass


class Cipher:
    """Encrypts and decrypts guest data; None passes through as None."""

    def __init__(self, key: bytes):
        if len(key) != 32:
            raise DataKeyError("the data key must be 32 bytes (base64 of 32 random bytes)")
        self._aead = AESGCM(key)
        # a key of its own for keyed digests (HMAC), derived from the data key
        import hashlib
        import hmac

        self._mac_key = hmac.new(key, b"channelmgr keyed digest v1", hashlib.sha256).digest()

    @classmethod
    def from_settings(cls, env_var: str, key_file: str | Path, env: dict[str, str] | None = None) -> "Cipher":
        env = os.environ if env is None else env
        if env.get(env_var):
            try:
                return cls(base64.b64decode(env[env_var], validate=True))
            except (ValueError, DataKeyError) as e:
                raise DataKeyError(f"{env_var} is not a base64 32-byte key: {e}") from None
        path = Path(key_file)
        if path.exists():
            try:
                return cls(base64.b64decode(path.read_text().strip(), validate=True))
            except (ValueError, DataKeyError) as e:
                raise DataKeyError(f"{path} does not hold a base64 32-byte key: {e}") from None
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(base64.b64encode(key).decode() + "\n")
        return cls(key)

    def encrypt(self, plain: str | bytes | None) -> str | None:
        if plain is None:
            return None
        data = plain.encode("utf-8") if isinstance(plain, str) else plain
        nonce = secrets.token_bytes(12)
        return _PREFIX + base64.b64encode(nonce + self._aead.encrypt(nonce, data, _AAD)).decode()

    def decrypt_bytes(self, token: str | None) -> bytes | None:
        if token is None:
            return None
        if not token.startswith(_PREFIX):
            raise DataKeyError("not a channelmgr ciphertext")
        raw = base64.b64decode(token[len(_PREFIX):])
        return self._aead.decrypt(raw[:12], raw[12:], _AAD)

    def decrypt(self, token: str | None) -> str | None:
        data = self.decrypt_bytes(token)
        return None if data is None else data.decode("utf-8")

    def digest(self, text: str) -> str:
        """A keyed digest (HMAC-SHA256, hex) of already normalised text: the same phone or
        e-mail is recognised across bookings without keeping it in plain (issue 12)."""
        import hashlib
        import hmac

        return hmac.new(self._mac_key, text.encode("utf-8"), hashlib.sha256).hexdigest()


# ---- masking ---------------------------------------------------------------------------

PII_KEYS = {
    "name", "guest", "guest_name", "givenname", "surname", "given_name", "first_name",
    "last_name", "phone", "mobile", "telephone", "phone_number", "email", "e_mail",
    "id_number", "idcard", "id_card", "passport", "document", "address",
    "special_requests", "contact", "contact_name", "contact_phone",
}
SECRET_KEYS = {
    "password", "passwd", "secret", "token", "authorization", "messagepassword",
    "app_secret", "session", "sign", "api_key", "client_secret", "key",
}

# Every pattern here runs in time linear in its input (issue 10: the old e-mail pattern
# backtracked quadratically, 22 s on 100,000 letters). The rules that keep it so:
# - a local part starts only where a run of local-part characters starts (the lookbehind)
#   and is taken possessively, so each character is read by one attempt only;
# - domain labels are possessive, so backtracking moves by whole labels, never inside one;
# - phone and ID patterns have bounded lengths.
# tests/test_security.py checks 1 MB adversarial inputs for each pattern.
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+\-])([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]*+@"
                    r"((?:[A-Za-z0-9\-]++\.)+[A-Za-z]{2,24}+)(?![A-Za-z0-9\-])")
# international numbers (+CC ...) and mainland mobiles (1[3-9] and 9 digits); dates and
# booking ids are left alone so operators can still read the logs
_PHONE = re.compile(r"(?<![\w.])(\+\d[\d \-]{6,24}\d|1[3-9]\d{9})(?![\w.])")
# PRC resident ID (18 chars)
_PRC_ID = re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{8}(\d{3}[\dXx])(?![0-9A-Za-z])")
_NON_DIGIT = re.compile(r"\D")


def mask_name(name: str) -> str:
    """张伟 -> 张*, John Smith -> J*** S****."""
    if not name:
        return name
    parts = name.split()
    if len(parts) == 1:
        return name[0] + "*" * max(1, len(name) - 1)
    return " ".join(p[0] + "*" * (len(p) - 1) for p in parts)


def mask_text(s: str) -> str:
    """Mask e-mails, phone numbers and ID numbers wherever they appear in free text."""
    if "@" in s:  # no e-mail without one
        s = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", s)
    s = _PRC_ID.sub(lambda m: f"{m.group(1)}********{m.group(2)[-1]}", s)

    def phone(m: re.Match) -> str:
        digits = _NON_DIGIT.sub("", m.group(1))
        if len(digits) < 7:
            return m.group(0)
        return "*" * (len(digits) - 4) + digits[-4:]

    return _PHONE.sub(phone, s)


# ---- masking stored bodies by field (names, free-text requests) ------------------------
# mask_text finds what has a shape (e-mails, phones, IDs); a name or a special request has
# none, so it is masked where the format says it is: each adapter names its own fields
# (XML elements, JSON keys, form fields) in a GuestFields. Each pass is one linear scan.


@dataclass(frozen=True)
class GuestFields:
    """Where one OTA's messages carry guest data that mask_text cannot recognise."""

    xml_names: frozenset[str] = frozenset()  # elements whose text is a person's name
    xml_texts: frozenset[str] = frozenset()  # elements whose whole content is free text
    json_names: frozenset[str] = frozenset()  # keys whose string (or list of strings) is a name
    json_texts: frozenset[str] = frozenset()  # keys whose string is free text
    form_names: frozenset[str] = frozenset()
    form_texts: frozenset[str] = frozenset()


def fields(*, xml_names=(), xml_texts=(), json_names=(), json_texts=(), form_names=(),
           form_texts=()) -> GuestFields:
    return GuestFields(frozenset(xml_names), frozenset(xml_texts), frozenset(json_names), frozenset(json_texts),
                       frozenset(form_names), frozenset(form_texts))


_XML_TAG = re.compile(r"<(/?)(?:[A-Za-z_][\w.\-]*+:)?+([A-Za-z_][\w.\-]*+)[^<>]*+>")
_JSON_STR = r'"(?:[^"\\]|\\.)*+"'
_JSON_FIELD = re.compile(r'"([A-Za-z_][\w\-]{0,63}+)"\s*+:\s*+(' + _JSON_STR + r"|\[\s*+(?:" + _JSON_STR
                         + r"\s*+,?+\s*+)*+\])")
_JSON_STR_RE = re.compile(_JSON_STR)
_FORM_FIELD = re.compile(r"(?<![^&?\s])([A-Za-z_][\w.\-]{0,63}+)=([^&\s]*+)")


def _mask_name_token(value: str) -> str:
    return mask_name(value.strip()) if value.strip() else value


def _mask_xml(s: str, f: GuestFields) -> str:
    out: list[str] = []
    pos = 0
    free = 0  # depth inside free-text elements
    name: str | None = None  # the name element whose text comes next
    for m in _XML_TAG.finditer(s):
        between = s[pos:m.start()]
        if between.strip():
            if free:
                between = "***"
            elif name is not None:
                between = _mask_name_token(between)
        out.append(between)
        out.append(m.group(0))
        pos = m.end()
        closing, tag = m.group(1) == "/", m.group(2)
        self_closing = m.group(0).endswith("/>") or m.group(0).startswith(("<?", "<!"))
        if tag in f.xml_texts and not self_closing:
            free = max(0, free - 1) if closing else free + 1
        name = tag if (tag in f.xml_names and not closing and not self_closing) else None
    tail = s[pos:]
    if tail.strip() and (free or name is not None):  # cut off inside a guest field
        tail = "***" if free else _mask_name_token(tail)
    out.append(tail)
    return "".join(out)


def _mask_json(s: str, f: GuestFields) -> str:
    def sub(m: re.Match) -> str:
        key, value = m.group(1), m.group(2)
        if key in f.json_texts:
            return f'"{key}": ' + _JSON_STR_RE.sub('"***"', value)
        if key in f.json_names:
            return f'"{key}": ' + _JSON_STR_RE.sub(lambda v: '"' + _mask_name_token(v.group(0)[1:-1]) + '"', value)
        return m.group(0)

    return _JSON_FIELD.sub(sub, s)


def _mask_form(s: str, f: GuestFields) -> str:
    def sub(m: re.Match) -> str:
        key, value = m.group(1), m.group(2)
        if key in f.form_texts and value:
            return f"{key}=***"
        if key in f.form_names and value:
            from urllib.parse import quote_plus, unquote_plus

            return f"{key}=" + quote_plus(_mask_name_token(unquote_plus(value)), safe="*")
        return m.group(0)

    return _FORM_FIELD.sub(sub, s)


def mask_body(s: str, f: GuestFields | None = None) -> str:
    """A message body for the sync log: e-mails, phones and IDs masked wherever they are,
    names and free text masked in the fields the OTA's format puts them in. Linear time."""
    if f is not None:
        # a pass runs only when one of its field names is in the body at all (a search in C):
        # without one it cannot change a character (an ARI push, the bulk of the sync log)
        if "<" in s and _any_in(s, f.xml_names, f.xml_texts):
            s = _mask_xml(s, f)
        if '"' in s and _any_in(s, f.json_names, f.json_texts):
            s = _mask_json(s, f)
        if "=" in s and _any_in(s, f.form_names, f.form_texts):
            s = _mask_form(s, f)
    return mask_text(s)


def _any_in(s: str, *names: frozenset[str]) -> bool:
    return any(n in s for group in names for n in group)


def union(*parts: GuestFields) -> GuestFields:
    """One GuestFields with every field of ``parts`` (for bodies whose channel is not known)."""
    return GuestFields(*(frozenset().union(*(getattr(p, n) for p in parts)) for n in GuestFields.__dataclass_fields__))


# the OpenTravel fields (Booking.com and Ctrip): for callers that do not know the channel
OPENTRAVEL_FIELDS = fields(
    xml_names=("GivenName", "MiddleName", "Surname", "NamePrefix", "NameSuffix", "NameTitle", "PersonName"),
    xml_texts=("SpecialRequest", "SpecialRequests", "Comment", "Comments", "AddressLine", "Reasons"),
)


def mask_value(key: str, value: Any) -> Any:
    k = key.lower().replace("-", "_")
    if k in SECRET_KEYS or k.endswith("_password") or k.endswith("_secret") or k.endswith("_token"):
        return "***" if value else value
    if isinstance(value, str):
        if k in PII_KEYS:
            if "@" in value:
                return mask_text(value)
            if any(ch.isdigit() for ch in value):
                return mask_text(value) if len(re.sub(r"\D", "", value)) >= 7 else "***"
            return mask_name(value)
        return mask_text(value)
    if isinstance(value, dict):
        return {kk: mask_value(str(kk), vv) for kk, vv in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_value(key, v) for v in value]
    return value


def structlog_masker(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: no log line ever carries guest data or a credential."""
    for k in list(event_dict):
        if k in ("timestamp", "level", "logger"):
            continue
        event_dict[k] = mask_value(k, event_dict[k])
    return event_dict
