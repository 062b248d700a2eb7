"""XML in and out, safely: no DTDs, no entities, no network, ever.

Every XML message from outside (OTA responses, pushed bookings) is read with
:func:`parse`, which refuses a document type declaration outright (XXE and
"billion laughs" both need one) and parses with entity resolution and network access off
as a second line of defence.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, Callable
from zoneinfo import ZoneInfo

from lxml import etree

from adapters.base.errors import ParseError

OTA_NS = "http://www.opentravel.org/OTA/2003/05"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"

_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
MAX_BYTES = 20 * 1024 * 1024


class _NoExternal(etree.Resolver):
    """Answers every request for an external resource (DTD, entity) with nothing, and
    remembers that one was asked for. libxml2 reads a DOCTYPE's external subset
    (``SYSTEM "file:///etc/passwd"``) even with ``load_dtd=False``; this stops the read."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def resolve(self, url, pubid, context):  # noqa: ANN001 - lxml's signature
        self.asked.append(str(url)[:200])
        return self.resolve_string("", context)


def _parser() -> tuple[etree.XMLParser, _NoExternal]:
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=False,
        huge_tree=False,  # also bounds the depth (256) and text node sizes
        remove_blank_text=False,
        collect_ids=False,
    )
    resolver = _NoExternal()
    parser.resolvers.add(resolver)
    return parser, resolver


_REFUSED = ("the XML message declares a DOCTYPE or ENTITY; these are refused "
            "(they can read local files or exhaust memory)")


def parse(data: bytes | str) -> etree._Element:
    """Parse an untrusted XML document; ParseError with a plain reason when refused.

    The DOCTYPE refusal is decided on what the parser read, not by searching bytes, so it
    holds in every encoding the parser reads (UTF-16 and UTF-32 with or without a BOM, any
    declared encoding): a document with a DOCTYPE (internal subset or external id), an
    entity reference, or a request for any external resource is refused. The byte search
    stays as a first, cheap line for the common (ASCII-compatible) case.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > MAX_BYTES:
        raise ParseError(f"the XML message is {len(data)} bytes, more than the {MAX_BYTES} accepted")
    if _DOCTYPE.search(data[:65536]) or _DOCTYPE.search(data):
        raise ParseError(_REFUSED)
    parser, resolver = _parser()
    try:
        root = etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError as e:
        if resolver.asked:
            raise ParseError(_REFUSED) from None
        raise ParseError(f"the message is not well-formed XML: {e}") from None
    except (ValueError, LookupError) as e:  # an encoding lxml cannot read, say
        raise ParseError(f"the message is not readable XML: {e}") from None
    if root is None:
        raise ParseError("the message is empty")
    info = root.getroottree().docinfo
    if (resolver.asked or info.doctype or info.internalDTD is not None or info.externalDTD is not None
            or info.system_url or info.public_id):
        raise ParseError(_REFUSED)
    if any(True for _ in root.iter(etree.Entity)):
        raise ParseError(_REFUSED)
    return root


def unwrap_soap(root: etree._Element) -> etree._Element:
    """The first element inside a SOAP 1.1 Body, or the element itself when not SOAP."""
    if etree.QName(root).namespace == SOAP_NS and etree.QName(root).localname == "Envelope":
        body = root.find(f"{{{SOAP_NS}}}Body")
        if body is None or len(body) == 0:
            raise ParseError("the SOAP envelope has no Body content")
        return body[0]
    return root


def wrap_soap(payload: etree._Element) -> etree._Element:
    env = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"soap": SOAP_NS})
    etree.SubElement(env, f"{{{SOAP_NS}}}Header")
    body = etree.SubElement(env, f"{{{SOAP_NS}}}Body")
    body.append(payload)
    return env


def tostring(el: etree._Element) -> bytes:
    return etree.tostring(el, xml_declaration=True, encoding="UTF-8")


def local(el: etree._Element) -> str:
    return etree.QName(el).localname


# ---- reading OpenTravel messages (namespace or not: OTA-XML writers differ) ------------


def children(el: etree._Element | None, *path: str) -> list[etree._Element]:
    """Elements by local names along ``path``."""
    found = [el] if el is not None else []
    for name in path:
        found = [c for f in found for c in f if isinstance(c.tag, str) and local(c) == name]
    return found


def first(el: etree._Element | None, *path: str) -> etree._Element | None:
    got = children(el, *path)
    return got[0] if got else None


def text(el: etree._Element | None) -> str | None:
    """An element's text, stripped; None when empty or absent."""
    if el is None:
        return None
    t = "".join(el.itertext()).strip()
    return t or None


def xs_date(value: str | None, what: str) -> date:
    if not value:
        raise ParseError(f"{what} is missing")
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        raise ParseError(f"{what} {value!r} is not a date") from None


def xs_datetime(value: str | None, naive_timezone: str) -> datetime | None:
    """An xs:dateTime; one without an offset is taken in ``naive_timezone``."""
    if not value:
        return None
    v = value.strip()
    if v.endswith("Z"):
        v = v[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        raise ParseError(f"{value!r} is not a date and time") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=ZoneInfo(naive_timezone))
    return dt


# ---- writing OpenTravel messages ---------------------------------------------------------


def restriction_messages(u: Any, new_message: Callable[[], etree._Element]) -> None:
    """An AriUpdate's restrictions as OTA_HotelAvailNotif AvailStatusMessages.

    ``new_message`` returns a fresh AvailStatusMessage whose StatusApplicationControl names
    the rate. OpenTravel allows one RestrictionStatus a message: one message per restriction
    (Master = stop-sell, Arrival = CTA, Departure = CTD), the lengths of stay in the first.
    """
    o = f"{{{OTA_NS}}}"
    restrictions = [(r, flag) for r, flag in (("Master", u.stop_sell), ("Arrival", u.cta),
                                              ("Departure", u.ctd)) if flag is not None]
    has_los = u.min_los is not None or u.max_los is not None
    if not has_los and not restrictions:
        return
    for n, (restriction, flag) in enumerate(restrictions or [(None, None)]):
        m = new_message()
        if n == 0 and has_los:
            los = etree.SubElement(m, o + "LengthsOfStay")
            if u.min_los is not None:
                etree.SubElement(los, o + "LengthOfStay", Time=str(u.min_los), MinMaxMessageType="SetMinLOS")
            if u.max_los is not None:
                etree.SubElement(los, o + "LengthOfStay", Time=str(u.max_los), MinMaxMessageType="SetMaxLOS")
        if restriction is not None:
            etree.SubElement(m, o + "RestrictionStatus", Status="Close" if flag else "Open", Restriction=restriction)
