"""Phones and e-mails: normalised for keyed digests, and phone numbers that cannot be one.

No regular expressions: a few per-country rules on the digits (length and prefix).
"""

from __future__ import annotations

MAX_LEN = 64

# calling code -> country, longest codes first when matching
CALLING = {"852": "HK", "853": "MO", "886": "TW", "86": "CN", "81": "JP", "82": "KR", "65": "SG", "44": "GB",
           "49": "DE", "33": "FR", "61": "AU", "7": "RU", "1": "US"}
CODE_OF = {"HK": "852", "MO": "853", "TW": "886", "CN": "86", "JP": "81", "KR": "82", "SG": "65", "GB": "44",
           "DE": "49", "FR": "33", "AU": "61", "RU": "7", "US": "1", "CA": "1"}


def normalise_email(email: str | None) -> str | None:
    if not email:
        return None
    e = email.strip().lower()[:254]
    return e if "@" in e else None


def split_phone(phone: str, default_country: str = "CN") -> tuple[str, str] | None:
    """(country, national digits) or None when there are no digits at all."""
    raw = phone.strip()[:MAX_LEN]
    intl = raw.startswith("+") or raw.startswith("00")
    digits = "".join(ch for ch in raw if ch.isascii() and ch.isdigit())
    if not digits:
        return None
    if raw.startswith("00"):
        digits = digits[2:]
    if intl:
        for code in sorted(CALLING, key=len, reverse=True):
            if digits.startswith(code):
                return CALLING[code], digits[len(code):]
        return "??", digits
    return default_country, digits


def normalise_phone(phone: str | None, default_country: str = "CN") -> str | None:
    """+<calling code><national number>, the form digests are made of."""
    if not phone:
        return None
    parts = split_phone(phone, default_country)
    if parts is None:
        return None
    country, national = parts
    code = CODE_OF.get(country, "")
    return f"+{code}{national.lstrip('0')}"  # the trunk 0 of a landline is not part of the number


def phone_problem(phone: str | None, default_country: str = "CN") -> str | None:
    """Why this cannot be a phone number of its country, or None when it can be."""
    if not phone or not phone.strip():
        return None
    raw = phone.strip()
    for ch in raw:
        if not (ch.isdigit() or ch in "+-() ."):
            return f"the phone number has a character a phone number does not ({ch!r})"
    parts = split_phone(raw, default_country)
    if parts is None:
        return "the phone number has no digits"
    country, n = parts
    if country == "CN":
        if n.startswith("1"):
            if len(n) != 11:
                return f"a Chinese mobile number has 11 digits (1[3-9]x xxxx xxxx), this one {len(n)}"
            if n[1] not in "3456789":
                return f"no Chinese mobile number starts with 1{n[1]}"
            return None
        if n.startswith("0"):
            return None if 10 <= len(n) <= 12 else (
                f"a Chinese landline is 0 + area code + number, 10 to 12 digits, this one {len(n)}")
        if n[0] in "23456789" and 9 <= len(n) <= 11:  # a landline written +86 21 ..., without the trunk 0
            return None
        return "a Chinese number starts with 1 (mobile) or 0 (landline with area code)"
    if country in ("HK", "MO"):
        return None if len(n) == 8 and n[0] in "235689" else f"a {country} number has 8 digits, not {len(n)}"
    if country == "TW":
        n = n.lstrip("0")
        return None if len(n) in (8, 9) else f"a Taiwan number has 8 or 9 digits, not {len(n)}"
    if country in ("US", "CA"):
        if len(n) == 11 and n.startswith("1"):
            n = n[1:]
        if len(n) != 10:
            return f"a North American number has 10 digits, not {len(n)}"
        if n[0] in "01" or n[3] in "01":
            return "a North American area code and exchange never start with 0 or 1"
        return None
    if country == "SG":
        return None if len(n) == 8 and n[0] in "3689" else "a Singapore number has 8 digits starting 3, 6, 8 or 9"
    if country in ("JP", "KR", "GB", "DE", "FR", "AU"):
        n = n.lstrip("0")
        return None if 7 <= len(n) <= 11 else f"a {country} number has 7 to 11 digits after the trunk 0, not {len(n)}"
    total = len(n)
    return None if 6 <= total <= 15 else f"a phone number has 6 to 15 digits (E.164), not {total}"
