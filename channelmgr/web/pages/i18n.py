"""Languages of the console: gettext catalogs read from .po files, and Babel formatting.

Catalogs live in channelmgr/web/locale/<lang>/LC_MESSAGES/<domain>.po (domains: ``console``
for the pages, ``desk``, ``reports``...). Every .po found is read at start-up (Babel's
pofile reader; no compile step, so an installed package works as it is) and the domains
of a language are merged into one table: a page may use any msgid of any domain.

The language of a request: the ``lang`` cookie (set by /lang/{zh|en}), else the
Accept-Language header (zh* -> zh, anything else -> en).
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime, format_timedelta
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
LANGS = ("zh", "en")
HTML_LANG = {"zh": "zh-CN", "en": "en"}
BABEL_LOCALE = {"zh": "zh_Hans_CN", "en": "en_GB"}
COOKIE = "lang"


@dataclass
class Catalog:
    lang: str
    messages: dict[str, str] = field(default_factory=dict)
    plurals: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    domains: list[str] = field(default_factory=list)

    def gettext(self, msgid: str) -> str:
        return self.messages.get(msgid) or msgid

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        forms = self.plurals.get((singular, plural))
        if forms:
            if len(forms) == 1:  # Chinese has one form
                return forms[0] or (singular if n == 1 else plural)
            return (forms[0] if n == 1 else forms[1]) or (singular if n == 1 else plural)
        return singular if n == 1 else plural


def load_catalogs(locale_dir: Path = LOCALE_DIR) -> dict[str, Catalog]:
    """Every domain of every language, merged per language (later domains never override
    a msgid an earlier one translated: domains are read in name order)."""
    out = {lang: Catalog(lang) for lang in LANGS}
    for lang in LANGS:
        folder = locale_dir / lang / "LC_MESSAGES"
        for po in sorted(folder.glob("*.po")) if folder.is_dir() else []:
            with po.open("rb") as f:
                cat = read_po(f, locale=BABEL_LOCALE[lang])
            c = out[lang]
            c.domains.append(po.stem)
            for msg in cat:
                if not msg.id:
                    continue
                if isinstance(msg.id, (tuple, list)):
                    strings = tuple(msg.string) if isinstance(msg.string, (tuple, list)) else (msg.string,)
                    c.plurals.setdefault((msg.id[0], msg.id[1]), strings)
                elif msg.string and not msg.fuzzy:
                    c.messages.setdefault(msg.id, msg.string)
    return out


CATALOGS: dict[str, Catalog] = {}


def catalogs() -> dict[str, Catalog]:
    if not CATALOGS:
        CATALOGS.update(load_catalogs())
    return CATALOGS


def pick_lang(cookie: str | None, accept_language: str | None) -> str:
    if cookie in LANGS:
        return cookie
    for part in (accept_language or "")[:512].split(","):
        tag = part.split(";", 1)[0].strip().lower()
        if tag.startswith("zh"):
            return "zh"
        if tag and tag != "*":
            return "en"
    return "en"


# the language of the request being rendered (set by the page's handler; a contextvar,
# so concurrent requests each keep their own)
CURRENT: contextvars.ContextVar[str] = contextvars.ContextVar("channelmgr_lang", default="en")


def gettext(msgid: str) -> str:
    return catalogs()[CURRENT.get()].gettext(msgid)


def ngettext(singular: str, plural: str, n: int) -> str:
    return catalogs()[CURRENT.get()].ngettext(singular, plural, n)


# ---- formatting (Babel, per language) ------------------------------------------------------
def _loc(lang: str | None = None) -> Locale:
    return Locale.parse(BABEL_LOCALE[lang or CURRENT.get()])


def money(minor: int | None, currency: str | None, lang: str | None = None) -> str:
    """Integer minor units as the language writes money: ¥1,288.00 (both languages)."""
    if minor is None:
        return "—"
    currency = (currency or "CNY").upper()
    from channelmgr.money import from_minor

    try:
        amount = from_minor(int(minor), currency)
    except Exception:  # an unknown currency code: two decimals
        amount = Decimal(int(minor)).scaleb(-2)
    text = format_currency(amount, currency, locale=_loc(lang), currency_digits=True)
    if currency == "CNY":  # en writes CN¥; hotels in China and their guests read ¥
        text = text.replace("CN¥", "¥").replace("CNY", "¥")
    return text


def number(n, lang: str | None = None) -> str:
    if n is None:
        return "—"
    return format_decimal(n, locale=_loc(lang))


def _as_date(d) -> date | None:
    if d is None or d == "":
        return None
    if isinstance(d, datetime):
        return d.date()
    if isinstance(d, date):
        return d
    return date.fromisoformat(str(d)[:10])


def day(d, lang: str | None = None) -> str:
    """12月3日 周四 / Thu 3 Dec."""
    d = _as_date(d)
    if d is None:
        return "—"
    lang = lang or CURRENT.get()
    if lang == "zh":
        return format_date(d, "M月d日 EEE", locale=_loc(lang))
    return format_date(d, "EEE d MMM", locale=_loc(lang))


def day_short(d, lang: str | None = None) -> str:
    """For a calendar column: 12/3 周四 / Thu 3."""
    d = _as_date(d)
    if d is None:
        return "—"
    lang = lang or CURRENT.get()
    if lang == "zh":
        return format_date(d, "M/d EEE", locale=_loc(lang))
    return format_date(d, "EEE d", locale=_loc(lang))


def _as_dt(v) -> datetime | None:
    if v is None or v == "":
        return None
    if isinstance(v, str):
        v = datetime.fromisoformat(v)
    if isinstance(v, datetime):
        return v if v.tzinfo else v.replace(tzinfo=timezone.utc)
    return None


def when(v, tz: str | None = None, lang: str | None = None) -> str:
    """A moment in the property's time zone: 12月3日 14:05:09 / 3 Dec 14:05:09."""
    dt = _as_dt(v)
    if dt is None:
        return "—"
    lang = lang or CURRENT.get()
    zone = ZoneInfo(tz or "Asia/Shanghai")
    pattern = "M月d日 HH:mm:ss" if lang == "zh" else "d MMM HH:mm:ss"
    return format_datetime(dt, pattern, tzinfo=zone, locale=_loc(lang))


def ago(v, now: datetime | None = None, lang: str | None = None) -> str:
    """How long ago: 3分钟前 / 3 minutes ago."""
    dt = _as_dt(v)
    if dt is None:
        return "—"
    delta = dt - (now or datetime.now(timezone.utc))
    if abs(delta.total_seconds()) < 1:
        return gettext("just now")
    return format_timedelta(delta, add_direction=True, locale=_loc(lang), threshold=1.5)


def seconds(s: float | None, lang: str | None = None) -> str:
    """A duration in words: 12秒 / 12 seconds."""
    if s is None:
        return "—"
    from datetime import timedelta

    return format_timedelta(timedelta(seconds=max(0.0, float(s))), locale=_loc(lang), threshold=1.5)
