"""XML in and out, safely: no DTDs, no entities, no network, ever.

Every XML message from outside (OTA responses, pushed bookings) is read with
:func:`parse`, which refuses a document type declaration outright (XXE and
"billion laughs" both need one) and parses with entity resolution and network access off
as a second line of defence.
"""

from __future__ import annotations

import re

from lxml import etree

from adapters.base.errors import ParseError

OTA_NS = "http://www.opentravel.org/OTA/2003/05"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"

_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
MAX_BYTES = 20 * 1024 * 1024


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
        collect_ids=False,
    )


def parse(data: bytes | str) -> etree._Element:
    """Parse an untrusted XML document; ParseError with a plain reason when refused."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > MAX_BYTES:
        raise ParseError(f"the XML message is {len(data)} bytes, more than the {MAX_BYTES} accepted")
    if _DOCTYPE.search(data[:65536]) or _DOCTYPE.search(data):
        raise ParseError("the XML message declares a DOCTYPE or ENTITY; these are refused "
                         "(they can read local files or exhaust memory)")
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as e:
        raise ParseError(f"the message is not well-formed XML: {e}") from None
    if root is None:
        raise ParseError("the message is empty")
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
