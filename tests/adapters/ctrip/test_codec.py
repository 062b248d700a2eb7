"""The Ctrip codec: messages valid against OpenTravel 2015B, bookings read exactly, money exact."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from lxml import etree

from adapters.base import AriUpdate, ParseError, Price
from adapters.base.sandbox import BookingEvent, SandboxBooking, SandboxCatalog
from adapters.base.xml import OTA_NS, SOAP_NS
from adapters.ctrip import codec
from adapters.ctrip.sandbox import CtripSandbox
from tests.adapters.ctrip.conftest import CATALOG, HOTEL, RATE, ROOM
from tests.schemas import assert_valid_ota, needs_schemas

D = date(2026, 5, 1)
UPDATES = [
    AriUpdate(HOTEL, ROOM, None, D, D + timedelta(days=2), rooms_to_sell=5, key="rooms"),
    AriUpdate(HOTEL, ROOM, RATE, D, D + timedelta(days=2), prices=(Price(1, 39900), Price(2, 45600)),
              currency="CNY", min_los=2, max_los=7, cta=False, ctd=True, stop_sell=False, key="rate"),
]
OPTS = codec.Options(breakfast={RATE: 2})
NAME = "张伟"
REQUESTS = "高楼层，无烟房；晚到 23:30 / late arrival"


def _root(body: bytes) -> etree._Element:
    return etree.fromstring(body)


@needs_schemas
def test_avail_notif_is_valid_2015b_and_carries_the_notes_fields():
    root = assert_valid_ota(codec.avail_notif(HOTEL, UPDATES, "user", "pw", OPTS).body)
    ns = {"o": OTA_NS}
    limit = root.find("o:AvailStatusMessages/o:AvailStatusMessage[@BookingLimit]", ns)
    assert limit.get("BookingLimit") == "5" and limit.get("BookingLimitMessageType") == "SetLimit"
    rid = root.find("o:POS/o:Source/o:RequestorID", ns)
    assert (rid.get("ID"), rid.get("MessagePassword")) == ("user", "pw")
    assert rid.find("o:CompanyName", ns).get("CodeContext")
    restr = {(r.get("Restriction"), r.get("Status")) for r in root.iter(f"{{{OTA_NS}}}RestrictionStatus")}
    assert restr == {("Master", "Open"), ("Arrival", "Open"), ("Departure", "Close")}
    los = {(x.get("MinMaxMessageType"), x.get("Time")) for x in root.iter(f"{{{OTA_NS}}}LengthOfStay")}
    assert los == {("SetMinLOS", "2"), ("SetMaxLOS", "7")}


@needs_schemas
def test_rate_amount_notif_is_valid_once_ctrips_extension_is_stripped():
    body = codec.rate_amount_notif(HOTEL, UPDATES, "user", "pw", OPTS).body
    root = _root(body)
    # MealsIncluded/@NumberOfBreakfast is Ctrip's vendor extension, not in OpenTravel 2015B:
    meals = list(root.iter(f"{{{OTA_NS}}}MealsIncluded"))
    assert meals and meals[0].get("NumberOfBreakfast") == "2"
    with pytest.raises(AssertionError, match="NumberOfBreakfast"):
        assert_valid_ota(root)
    # ... so it is stripped before validating; BaseByGuestAmt/@Code="Sell" is schema-valid and stays
    stripped = assert_valid_ota(codec.strip_extensions(root))
    amts = list(stripped.iter(f"{{{OTA_NS}}}BaseByGuestAmt"))
    assert [(a.get("NumberOfGuests"), a.get("AmountAfterTax"), a.get("Code")) for a in amts] == [
        ("1", "399.00", "Sell"), ("2", "456.00", "Sell")]


@needs_schemas
def test_without_breakfast_the_rate_message_is_plain_2015b():
    assert_valid_ota(codec.rate_amount_notif(HOTEL, UPDATES, "u", "p").body)


def test_soap_envelope_is_a_setting():
    body = codec.avail_notif(HOTEL, UPDATES, "u", "p", codec.Options(soap=True)).body
    root = _root(body)
    assert etree.QName(root).namespace == SOAP_NS
    assert etree.QName(root.find(f"{{{SOAP_NS}}}Body")[0]).localname == "OTA_HotelAvailNotifRQ"
    assert codec.Options.from_settings({"soap": "true"}).soap is True
    assert codec.Options.from_settings({}).soap is False


@needs_schemas
@pytest.mark.parametrize("body", [
    codec.res_answer("OTA_HotelResRQ", "1000001", "CM000001", "S", hotel=HOTEL),
    codec.res_answer("OTA_HotelResRQ", "1000001", "CM000001", "S", duplicate=True, hotel=HOTEL),
    codec.cancel_answer("1000001", "CM000001", duplicate=True),
    codec.read_answer_rs("1000001", "CM000001", "C"),
    codec.error_answer("OTA_HotelResRQ", "497", "authorization failed", type_="4"),
    codec.error_answer("OTA_CancelRQ", "450", "unreadable"),
    codec.error_answer("OTA_ReadRQ", "450", "no such order"),
], ids=["res", "res-duplicate", "cancel", "read", "error-auth", "error-cancel", "error-read"])
def test_every_answer_we_build_is_valid_2015b(body):
    assert_valid_ota(body)


def _event(booking: SandboxBooking, action: str, rev: int) -> BookingEvent:
    return BookingEvent(rev, action, dict(booking.data), datetime(2026, 4, 1, 8, rev, tzinfo=UTC))


def _sandbox_booking() -> tuple[CtripSandbox, SandboxBooking]:
    sb = CtripSandbox(SandboxCatalog.from_dict(CATALOG), {"username": "u", "password": "p"})
    b = sb.inject({"hotel": HOTEL, "room": ROOM, "rate": RATE, "checkin": "2026-05-01", "checkout": "2026-05-03",
                   "rooms": 1, "guest": {"name": NAME, "phone": "+86 138 0013 8000", "email": "zw@example.cn"},
                   "amount_minor": 91201, "currency": "CNY", "special_requests": REQUESTS, "force": True})
    return sb, b


@needs_schemas
def test_the_sandboxs_pushed_messages_are_valid_2015b():
    sb, b = _sandbox_booking()
    for action in ("new", "modify", "cancel"):
        assert_valid_ota(sb.booking_message(b, _event(b, action, 1)))


def test_a_pushed_booking_reads_back_exactly():
    sb, b = _sandbox_booking()
    raw = etree.tostring(sb.booking_message(b, _event(b, "new", 1)), xml_declaration=True, encoding="UTF-8")
    rev = codec.reservation(codec.read_inbound(raw), raw)
    assert (rev.channel, rev.hotel, rev.ota_booking_id, rev.action) == ("ctrip", HOTEL, b.ota_booking_id, "new")
    # the reservation's LastModifyDateTime with the content's fingerprint; not SequenceNmbr
    assert rev.revision.startswith("mod-") and "seq" not in rev.revision
    (stay,) = rev.stays
    assert (stay.room, stay.rate, stay.checkin, stay.checkout, stay.rooms) == (
        ROOM, RATE, date(2026, 5, 1), date(2026, 5, 3), 1)
    assert [n.amount_minor for n in stay.nightly] == [45600, 45601]
    assert (rev.amount_minor, rev.currency) == (91201, "CNY")
    assert rev.guest.name.encode("utf-8") == NAME.encode("utf-8")
    assert rev.guest.phone == "+86 138 0013 8000" and rev.guest.email == "zw@example.cn"
    assert rev.special_requests.encode("utf-8") == REQUESTS.encode("utf-8")
    assert rev.booked_at is not None and rev.revised_at is not None and rev.raw == raw

    mod_raw = etree.tostring(sb.booking_message(b, _event(b, "modify", 2)))
    mod = codec.reservation(codec.read_inbound(mod_raw), mod_raw)
    assert mod.action == "modify" and mod.revision != rev.revision

    cancel_raw = etree.tostring(sb.booking_message(b, _event(b, "cancel", 3)))
    cancel = codec.cancellation(codec.read_inbound(cancel_raw), cancel_raw)
    assert (cancel.action, cancel.hotel, cancel.ota_booking_id) == ("cancel", HOTEL, b.ota_booking_id)
    assert cancel.revision.startswith("fp-") and cancel.revision not in (rev.revision, mod.revision)


def _res(person: str, total: str = "912.00", currency: str = "CNY") -> bytes:
    return f"""<OTA_HotelResRQ xmlns="{OTA_NS}" Version="1.0">
      <HotelReservations><HotelReservation ResStatus="Commit">
        <RoomStays><RoomStay><RoomTypes><RoomType RoomTypeCode="{ROOM}"/></RoomTypes>
          <TimeSpan Start="2026-05-01" Duration="P2N"/><BasicPropertyInfo HotelCode="{HOTEL}"/></RoomStay></RoomStays>
        <ResGuests><ResGuest><Profiles><ProfileInfo><Profile><Customer>{person}</Customer></Profile></ProfileInfo>
        </Profiles></ResGuest></ResGuests>
        <ResGlobalInfo><Comments><Comment><Text>请安排安静房间</Text></Comment></Comments>
          <Total AmountAfterTax="{total}" CurrencyCode="{currency}"/>
          <HotelReservationIDs><HotelReservationID ResID_Type="501" ResID_Value="77"/></HotelReservationIDs>
        </ResGlobalInfo></HotelReservation></HotelReservations></OTA_HotelResRQ>""".encode()


@pytest.mark.parametrize("person, name", [
    ("<PersonName><GivenName>伟</GivenName><Surname>张</Surname></PersonName>", "张伟"),
    ("<PersonName><Surname>欧阳娜娜</Surname></PersonName>", "欧阳娜娜"),
    ("<PersonName><GivenName>Wei</GivenName><Surname>Zhang</Surname></PersonName>", "Wei Zhang"),
    ("<PersonName>李娜</PersonName>", "李娜"),
])
def test_names_single_or_split_survive(person, name):
    raw = _res(person)
    rev = codec.reservation(codec.read_inbound(raw), raw)
    assert rev.guest.name == name
    assert rev.special_requests == "请安排安静房间"
    assert rev.stays[0].checkout == date(2026, 5, 3)
    assert rev.revision.startswith("fp-")  # no LastModifyDateTime: the content's fingerprint


@pytest.mark.parametrize("text, currency, minor", [
    ("912.00", "CNY", 91200), ("912", "CNY", 91200), ("0.01", "CNY", 1), ("1000", "JPY", 1000),
    ("12.345", "KWD", 12345), ("99999999999.99", "CNY", 9999999999999), ("0.10", "CNY", 10),
])
def test_amounts_become_exact_minor_units(text, currency, minor):
    assert codec.parse_amount(text, currency) == minor


@pytest.mark.parametrize("text, currency", [
    ("912.001", "CNY"), ("1000.5", "JPY"), ("1e3", "CNY"), ("NaN", "CNY"), ("12,00", "CNY"), ("1.00", "XXX"),
    ("-", "CNY"),
])
def test_amounts_that_would_need_rounding_or_guessing_are_refused(text, currency):
    with pytest.raises(ParseError):
        codec.parse_amount(text, currency)


def test_format_amount_is_exact_and_refuses_floats():
    assert codec.format_amount(45600, "CNY") == "456.00"
    assert codec.format_amount(1, "CNY") == "0.01"
    assert codec.format_amount(1000, "JPY") == "1000"
    with pytest.raises(TypeError):
        codec.format_amount(456.0, "CNY")  # type: ignore[arg-type]


def test_a_booking_with_a_bad_total_is_unreadable():
    raw = _res("<PersonName>李娜</PersonName>", total="912.005")
    with pytest.raises(ParseError):
        codec.reservation(codec.read_inbound(raw), raw)


@pytest.mark.parametrize("payload", [
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><OTA_HotelResRQ>&x;</OTA_HotelResRQ>',
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><r>&lol2;</r>',
    b"<OTA_HotelResRQ><unclosed>",
])
def test_hostile_or_broken_xml_is_refused(payload):
    with pytest.raises(ParseError):
        codec.read_inbound(payload)


def test_redaction_masks_message_passwords():
    assert codec.redact('<RequestorID ID="a" MessagePassword="s3cret"/>') == '<RequestorID ID="a" MessagePassword="***"/>'
