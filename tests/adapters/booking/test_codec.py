"""The Booking.com codec: what it writes is valid 2015B, what it reads comes out exact."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from adapters.base import AriUpdate, ParseError, Price
from adapters.base.sandbox import SandboxCatalog
from adapters.booking import codec
from adapters.booking.codec import AckRef, Options
from adapters.booking.sandbox import BookingSandbox
from tests.schemas import ALPINEBITS_DIR, assert_valid_ota, needs_schemas

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
D1, D3 = date(2026, 4, 1), date(2026, 4, 3)
OTA = "{http://www.opentravel.org/OTA/2003/05}"

needs_alpinebits = pytest.mark.skipif(
    not (ALPINEBITS_DIR / "examples").is_dir(),
    reason=f"the AlpineBits samples are not at {ALPINEBITS_DIR} (../shared is only beside CI checkouts)")


def sample(name: str) -> bytes:
    return (ALPINEBITS_DIR / "examples" / name).read_bytes()


def updates() -> list[AriUpdate]:
    return [
        AriUpdate("100001", "DK", None, D1, D3, rooms_to_sell=5, key="rooms"),
        AriUpdate("100001", "DK", "BAR", D1, D3, prices=(Price(1, 39900), Price(2, 45600)), currency="CNY",
                  min_los=2, max_los=7, cta=True, ctd=False, stop_sell=False, key="rate"),
        AriUpdate("100001", "DK", "EB", D1, D1, stop_sell=True, key="closed"),
    ]


# ---- every message we write is valid OpenTravel 2015B ------------------------------------


@needs_schemas
def test_avail_notif_is_valid_2015b_and_carries_rooms_and_restrictions():
    built = codec.avail_notif("100001", updates(), now=NOW)
    root = assert_valid_ota(built.body)
    msgs = root.findall(f"{OTA}AvailStatusMessages/{OTA}AvailStatusMessage")
    assert root.find(f"{OTA}AvailStatusMessages").get("HotelCode") == "100001"
    room_level = [m for m in msgs if m.get("BookingLimit") is not None]
    assert [m.get("BookingLimit") for m in room_level] == ["5"]
    assert room_level[0].find(f"{OTA}StatusApplicationControl").get("RatePlanCode") is None
    restrictions = {(m.find(f"{OTA}StatusApplicationControl").get("RatePlanCode"),
                     m.find(f"{OTA}RestrictionStatus").get("Restriction"),
                     m.find(f"{OTA}RestrictionStatus").get("Status"))
                    for m in msgs if m.find(f"{OTA}RestrictionStatus") is not None}
    assert restrictions == {("BAR", "Master", "Open"), ("BAR", "Arrival", "Close"), ("BAR", "Departure", "Open"),
                            ("EB", "Master", "Close")}
    los = {(x.get("MinMaxMessageType"), x.get("Time")) for x in root.iter(f"{OTA}LengthOfStay")}
    assert los == {("SetMinLOS", "2"), ("SetMaxLOS", "7")}
    # every message has its LocatorID, and each maps back to its item
    assert sorted(built.locators) == sorted(m.get("LocatorID") for m in msgs)
    assert set(built.locators.values()) == {0, 1, 2}


@needs_schemas
def test_rate_amount_notif_is_valid_2015b_with_one_amount_per_occupancy():
    built = codec.rate_amount_notif("100001", updates(), now=NOW)
    root = assert_valid_ota(built.body)
    amts = root.findall(f".//{OTA}BaseByGuestAmt")
    assert [(a.get("NumberOfGuests"), a.get("AmountAfterTax"), a.get("DecimalPlaces"), a.get("CurrencyCode"))
            for a in amts] == [("1", "39900", "2", "CNY"), ("2", "45600", "2", "CNY")]
    assert list(built.locators.values()) == [1]  # only the priced item


@needs_schemas
@pytest.mark.parametrize("feed", ["new", "modify"])
def test_acknowledgements_are_valid_2015b_with_basic_property_info(feed):
    body = codec.acknowledgement([AckRef(feed, "100001", "4001234567"), AckRef(feed, "100002", "4001234568")],
                                 feed, now=NOW)
    root = assert_valid_ota(body)
    assert etree.QName(root).localname == ("OTA_HotelResNotifRS" if feed == "new" else "OTA_HotelResModifyNotifRS")
    assert root[0].tag == f"{OTA}Success"
    ids = [(i.get("ResID_Value"), i.get("ResID_Type")) for i in root.iter(f"{OTA}HotelReservationID")]
    assert ids == [("4001234567", "14"), ("4001234568", "14")]
    assert [b.get("HotelCode") for b in root.iter(f"{OTA}BasicPropertyInfo")] == ["100001", "100002"]


@needs_schemas
def test_the_documented_ack_without_basic_property_info_is_invalid_which_is_why_we_add_it():
    root = etree.fromstring(codec.acknowledgement([AckRef("new", "100001", "4001234567")], "new", now=NOW))
    for b in list(root.iter(f"{OTA}BasicPropertyInfo")):
        b.getparent().remove(b)
    with pytest.raises(AssertionError, match="not valid"):
        assert_valid_ota(root)


@needs_schemas
def test_the_sandboxs_reservation_messages_are_valid_2015b():
    sb = BookingSandbox(SandboxCatalog.from_dict({"hotels": {"100001": {"currency": "CNY",
                                                                         "rooms": {"DK": ["BAR"]}}}}), {})
    b = sb.inject({"hotel": "100001", "room": "DK", "rate": "BAR", "checkin": "2026-04-01", "checkout": "2026-04-03",
                   "guest": {"name": "张伟", "phone": "+86 138 0013 8000", "email": "zw@example.cn"},
                   "amount_minor": 91201, "special_requests": "高楼层"})
    sb.inject({"action": "modify", "ota_booking_id": b.ota_booking_id, "checkout": "2026-04-04"})
    sb.inject({"action": "cancel", "ota_booking_id": b.ota_booking_id})
    new = assert_valid_ota(sb.reservations_message("OTA_HotelResNotifRQ", [(b, b.events[0])]))
    mod = assert_valid_ota(sb.reservations_message("OTA_HotelResModifyNotifRQ", [(b, e) for e in b.events[1:]]))
    assert [r.get("ResStatus") for r in new.iter(f"{OTA}HotelReservation")] == ["Commit"]
    assert [r.get("ResStatus") for r in mod.iter(f"{OTA}HotelResModify")] == ["Modify", "Cancel"]


# ---- reading reservations: the AlpineBits samples ----------------------------------------


@needs_alpinebits
def test_the_alpinebits_reservation_push_sample_is_read():
    (d,) = codec.reservation_feed(sample("GuestRequests-OTA_HotelResNotifRQ-reservation-push.xml"), "new")
    assert d.error is None and d.kind == "reservation"
    rev = d.revision
    assert (rev.channel, rev.hotel, rev.ota_booking_id, rev.action) == ("booking", "123", "6b34fe24ac2ff810", "new")
    (stay,) = rev.stays
    assert (stay.room, stay.rate, stay.checkin, stay.checkout, stay.rooms, stay.guests) == \
        ("bigsuite", "123456-xyz", date(2012, 1, 1), date(2012, 1, 12), 1, 4)
    assert (rev.amount_minor, rev.currency) == (29900, "EUR")  # "299" EUR, no DecimalPlaces: major units
    assert rev.guest.name == "Otto Mustermann"
    assert rev.guest.phone == "+4934567891" and rev.guest.email == "otto.mustermann@example.com"
    assert "Sind Hunde erlaubt?" in rev.special_requests and "Parkplatz" in rev.special_requests
    assert rev.booked_at == datetime(2012, 3, 21, 15, 0, tzinfo=timezone(timedelta(hours=1)))
    assert rev.revised_at == rev.booked_at and rev.revision == "new@2012-03-21T15:00:00+01:00"
    assert b"6b34fe24ac2ff810" in d.raw and d.raw.lstrip().startswith(b"<HotelReservation")
    assert d.ack_ref == AckRef("new", "123", "6b34fe24ac2ff810", None)


@needs_alpinebits
def test_the_alpinebits_retrieve_samples_reservation_and_cancellation_are_read():
    (res,) = codec.reservation_feed(sample("GuestRequests-OTA_ResRetrieveRS-reservation.xml"), "new")
    assert res.revision.ota_booking_id == "6b34fe24ac2ff810"
    assert res.revision.stays[0].checkout - res.revision.stays[0].checkin == timedelta(days=11)
    assert res.revision.amount_minor == 29900 and res.revision.guest.name == "Otto Mustermann"

    (cancel,) = codec.reservation_feed(sample("GuestRequests-OTA_ResRetrieveRS-cancellation.xml"), "modify")
    assert cancel.error is None and cancel.kind == "cancellation"
    assert (cancel.revision.action, cancel.revision.ota_booking_id) == ("cancel", "c24e8b15ca469388")
    assert cancel.revision.stays == () and cancel.revision.amount_minor is None
    assert cancel.revision.revision != res.revision.revision


@needs_alpinebits
def test_a_reservation_that_cannot_be_read_is_kept_with_its_reason_not_dropped():
    # a guest request with a window of dates, not a stay: no dates to book
    (d,) = codec.reservation_feed(sample("GuestRequests-OTA_ResRetrieveRS-request-with-roomtype.xml"), "new")
    assert d.revision is None and "no dates" in d.error
    assert b"6b34fe24ac2ff811" in d.raw and d.ack_ref is None


def test_one_delivery_per_reservation_each_with_its_own_raw_bytes():
    body = ("""<?xml version="1.0" encoding="UTF-8"?>
<OTA_HotelResNotifRQ xmlns="http://www.opentravel.org/OTA/2003/05" Version="2.001"><HotelReservations>
<HotelReservation ResStatus="Commit" CreateDateTime="2026-03-01T10:00:00+00:00">%s</HotelReservation>
<HotelReservation ResStatus="Commit" CreateDateTime="2026-03-01T10:05:00">
 <RoomStays><RoomStay><RoomTypes><RoomType RoomTypeCode="DK"/></RoomTypes></RoomStay></RoomStays>
 <ResGlobalInfo><HotelReservationIDs><HotelReservationID ResID_Type="14" ResID_Value="2"/></HotelReservationIDs>
 <BasicPropertyInfo HotelCode="100001"/></ResGlobalInfo></HotelReservation>
</HotelReservations></OTA_HotelResNotifRQ>""".replace("%s", """
 <RoomStays><RoomStay><RoomTypes><RoomType RoomTypeCode="DK"/></RoomTypes><RatePlans><RatePlan RatePlanCode="BAR"/></RatePlans>
 <RoomRates><RoomRate><Rates>
   <Rate EffectiveDate="2026-04-01" ExpireDate="2026-04-03"><Base AmountAfterTax="100.10" CurrencyCode="CNY"/></Rate>
   <Rate EffectiveDate="2026-04-03" ExpireDate="2026-04-03" ExpireDateExclusiveIndicator="false"><Base AmountAfterTax="12000" DecimalPlaces="2" CurrencyCode="CNY"/></Rate>
 </Rates></RoomRate></RoomRates>
 <TimeSpan Start="2026-04-01" Duration="P3N"/></RoomStay></RoomStays>
 <ResGlobalInfo><HotelReservationIDs><HotelReservationID ResID_Type="14" ResID_Value="1" ResID_Source="Booking.com"/></HotelReservationIDs>
 <BasicPropertyInfo HotelCode="100001"/></ResGlobalInfo>""")).encode()
    first, second = codec.reservation_feed(body, "new")
    rev = first.revision
    assert [(n.night, n.amount_minor) for n in rev.stays[0].nightly] == [
        (date(2026, 4, 1), 10010), (date(2026, 4, 2), 10010), (date(2026, 4, 3), 12000)]
    assert rev.amount_minor == 32020  # no Total: the nights add up
    assert rev.stays[0].checkout == date(2026, 4, 4)
    assert rev.booked_at.tzinfo is not None
    assert b'ResID_Value="1"' in first.raw and b'ResID_Value="2"' not in first.raw
    assert second.error and "no dates" in second.error and b'ResID_Value="2"' in second.raw


def test_statuses_map_to_new_modify_and_cancel():
    def action(status: str, feed="new") -> str:
        el = etree.fromstring(f'<HotelReservation xmlns="http://www.opentravel.org/OTA/2003/05" ResStatus="{status}">'
                              '<UniqueID Type="14" ID="9"/></HotelReservation>')
        return codec.reservation(el, feed=feed)[0].action

    assert [action(s) for s in ("Commit", "Book", "Reserved", "Modify", "Cancel", "Cancelled")] == \
        ["new", "new", "new", "modify", "cancel", "cancel"]
    assert action("Commit", feed="modify") == "modify"
    with pytest.raises(ParseError, match="In-house"):
        action("In-house")


# ---- hostile XML ------------------------------------------------------------------------

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<OTA_HotelResNotifRQ xmlns="http://www.opentravel.org/OTA/2003/05" Version="1"><HotelReservations>
<HotelReservation ResStatus="Commit"><UniqueID Type="14" ID="1"/><ResGlobalInfo><Comments><Comment><Text>&xxe;</Text>
</Comment></Comments></ResGlobalInfo></HotelReservation></HotelReservations></OTA_HotelResNotifRQ>"""
LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<OTA_HotelResNotifRQ xmlns="http://www.opentravel.org/OTA/2003/05" Version="1">&lol4;</OTA_HotelResNotifRQ>"""


@pytest.mark.parametrize("payload", [XXE, LAUGHS], ids=["xxe", "billion-laughs"])
def test_entities_are_refused_before_anything_is_read(payload):
    for read in (lambda: codec.reservation_feed(payload, "new"), lambda: codec.read_answer(payload),
                 lambda: codec.readback(payload, "100001")):
        with pytest.raises(ParseError, match="DOCTYPE or ENTITY") as e:
            read()
        assert "root:" not in str(e.value)


# ---- answers ----------------------------------------------------------------------------


def test_answers_are_read_with_their_ruid_warnings_and_errors():
    ok = b"""<?xml version="1.0" encoding="UTF-8"?>
<OTA_HotelAvailNotifRS xmlns="http://www.opentravel.org/OTA/2003/05" Version="2.001"><Success/>
<Warnings><Warning Type="3" Code="WARN_DUPLICATE_DATES" RecordID="2">dup</Warning>
<Warning Type="3" Code="ROOM_ID_INVALID">room 9 of LocatorID 3 is unknown</Warning></Warnings>
</OTA_HotelAvailNotifRS>
<!-- RUID: [UmFuZG9tSVYkc2RlIyh9Yb0=] -->"""
    a = codec.read_answer(ok)
    assert a.success and not a.errors
    assert [(w.code, w.record) for w in a.warnings] == [("WARN_DUPLICATE_DATES", "2"), ("ROOM_ID_INVALID", "3")]
    assert codec.ruid(ok) == "UmFuZG9tSVYkc2RlIyh9Yb0="
    auth = b'<Errors><Error ShortText="Authorization Required"/></Errors>\n<!-- RUID: [abc] -->'
    a = codec.read_answer(auth)
    assert not a.success and a.errors[0].text == "Authorization Required" and codec.ruid(auth) == "abc"


# ---- money, exactly -----------------------------------------------------------------------


@pytest.mark.parametrize("minor,currency,minor_text,decimal_text,places", [
    (1, "CNY", "1", "0.01", 2),
    (9999999, "CNY", "9999999", "99999.99", 2),
    (12345, "JPY", "12345", "12345", 0),
    (100, "KWD", "100", "0.100", 3),
])
def test_amounts_are_written_and_read_exactly(minor, currency, minor_text, decimal_text, places):
    assert codec.format_amount(minor, currency, "minor") == (minor_text, places)
    assert codec.format_amount(minor, currency, "decimal") == (decimal_text, places)
    assert codec.parse_amount(minor_text, currency, str(places)) == minor
    assert codec.parse_amount(decimal_text, currency, str(places)) == minor
    assert codec.parse_amount(decimal_text, currency) == minor


def test_money_never_goes_through_float_and_is_never_rounded():
    with pytest.raises(TypeError):
        codec.format_amount(0.1, "CNY")  # type: ignore[arg-type]
    with pytest.raises(ParseError, match="more decimals"):
        codec.parse_amount("100.5", "JPY")
    with pytest.raises(ParseError, match="more decimals"):
        codec.parse_amount("0.001", "CNY")
    with pytest.raises(ParseError):
        codec.parse_amount("1e999999", "CNY")
    assert codec.parse_amount("299", "EUR") == 29900  # no DecimalPlaces, no point: major units
    assert codec.item_problem(AriUpdate("h", "r", "p", D1, D1, prices=(Price(2, 100),), key="k")) == \
        ("CHANNELMGR_NO_CURRENCY", "prices need a currency")


@needs_schemas
def test_big_and_tiny_amounts_stay_exact_in_a_valid_message():
    u = [AriUpdate("1", "DK", "BAR", D1, D1, prices=(Price(1, 1), Price(2, 9999999)), currency="CNY", key="k")]
    for fmt, texts in (("minor", ["1", "9999999"]), ("decimal", ["0.01", "99999.99"])):
        root = assert_valid_ota(codec.rate_amount_notif("1", u, Options(amount_format=fmt)).body)
        assert [a.get("AmountAfterTax") for a in root.iter(f"{OTA}BaseByGuestAmt")] == texts


def test_chinese_names_and_requests_survive_byte_for_byte():
    name, requests = "欧阳 娜娜", "高楼层，无烟房；晚到 23:30 / late arrival\n请准备婴儿床"
    body = f"""<?xml version="1.0" encoding="UTF-8"?>
<OTA_HotelResModifyNotifRQ xmlns="http://www.opentravel.org/OTA/2003/05" Version="2.001"><HotelResModifies>
<HotelResModify ResStatus="Modify" LastModifyDateTime="2026-03-01T10:00:00.123456+08:00">
<RoomStays><RoomStay><RoomTypes><RoomType RoomTypeCode="DK"/></RoomTypes><TimeSpan Start="2026-04-01" End="2026-04-02"/>
<Total AmountAfterTax="888.88" CurrencyCode="CNY"/></RoomStay></RoomStays>
<ResGuests><ResGuest><Profiles><ProfileInfo><Profile><Customer><PersonName><GivenName>欧阳</GivenName>
<Surname>娜娜</Surname></PersonName></Customer></Profile></ProfileInfo></Profiles></ResGuest></ResGuests>
<ResGlobalInfo><SpecialRequests><SpecialRequest><Text>{requests}</Text></SpecialRequest></SpecialRequests>
<HotelReservationIDs><HotelReservationID ResID_Type="14" ResID_Value="4000000001"/></HotelReservationIDs>
<BasicPropertyInfo HotelCode="100001"/></ResGlobalInfo></HotelResModify></HotelResModifies></OTA_HotelResModifyNotifRQ>
""".encode()
    (d,) = codec.reservation_feed(body, "modify")
    assert d.revision.guest.name.encode("utf-8") == name.encode("utf-8")
    assert d.revision.special_requests.encode("utf-8") == requests.encode("utf-8")
    assert requests.encode("utf-8") in d.raw  # the raw bytes are UTF-8, not character references
    assert d.revision.amount_minor == 88888
    assert d.revision.revised_at == datetime(2026, 3, 1, 2, 0, 0, 123456, tzinfo=UTC)


@given(minor=st.integers(min_value=0, max_value=10**15), currency=st.sampled_from(["CNY", "JPY", "KWD", "EUR"]),
       fmt=st.sampled_from(["minor", "decimal"]))
def test_any_amount_written_is_read_back_to_the_same_minor_units(minor, currency, fmt):
    text, places = codec.format_amount(minor, currency, fmt)
    assert codec.parse_amount(text, currency, str(places)) == minor
