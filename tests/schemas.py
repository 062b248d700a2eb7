"""The reference schemas in ../shared/schemas (present in CI, absent in a user's checkout)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from lxml import etree

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
OTA_DIR = SHARED / "schemas" / "opentravel-2015B"
ALPINEBITS_DIR = SHARED / "schemas" / "alpinebits-2020-10"

needs_schemas = pytest.mark.skipif(
    not OTA_DIR.is_dir(),
    reason=f"the OpenTravel 2015B schemas are not at {OTA_DIR} (../shared is only beside CI checkouts)",
)


@functools.lru_cache(maxsize=None)
def ota_schema(root_name: str) -> etree.XMLSchema:
    """The 2015B schema for a message root such as OTA_HotelAvailNotifRQ."""
    return etree.XMLSchema(etree.parse(str(OTA_DIR / f"{root_name}.xsd")))


def assert_valid_ota(xml: bytes | etree._Element) -> etree._Element:
    """Validate an OpenTravel message against 2015B; fails with the schema's own messages."""
    root = etree.fromstring(xml) if isinstance(xml, (bytes, str)) else xml
    name = etree.QName(root).localname
    schema = ota_schema(name)
    if not schema.validate(root):
        errors = "\n".join(f"  line {e.line}: {e.message}" for e in schema.error_log)
        raise AssertionError(f"{name} is not valid against OpenTravel 2015B:\n{errors}")
    return root
