"""The desk's page on a running daemon (issue 12): requests with their time left, red when overdue
(moved clock), in 中文 and English; a direct booking through the page's form."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from lxml import html

from channelmgr.ledger.types import AriChange
from tests.sync.harness import start
from tests.web.helpers import bearer

pytestmark = pytest.mark.slow


@pytest.fixture
async def run(tmp_path):
    r = await start(tmp_path, None, horizon_days=30)
    yield r
    await r.close()


async def _page(r, headers, lang: str, path: str = "/desk"):
    async with r.http.get(r.d.base_url + path, headers=headers, cookies={"lang": lang},
                          allow_redirects=False) as resp:
        assert resp.status == 200, (resp.status, await resp.text())
        return html.fromstring(await resp.text())


async def test_requests_on_the_desk_page_turn_red_when_overdue_in_both_languages(run):
    r = run
    headers = await bearer(r.d, "operator", "desk-page")
    nights = [r.today() + timedelta(days=11 + i) for i in range(2)]
    await r.ledger.set_ari(AriChange("SHA-BUND", "DK", nights[0], nights[-1], rate_plan="BAR-DK", rooms=5,
                                     price_minor=88800, stop_sell=False), actor="test")
    r.d.wake_all()
    await r.converge(nights, channels=("ctrip",))
    room, rate = r.codes("ctrip", "DK", "BAR-DK")
    oid = (await r.book("ctrip", hotel=r.hotel("ctrip"), room=room, rate=rate, checkin=nights[0].isoformat(),
                        checkout=(nights[-1] + timedelta(days=1)).isoformat(), rooms=1, amount_minor=177600,
                        currency="CNY", guest={"name": "张伟", "phone": "13812340002"},
                        special_requests="无烟房，高楼层"))["ota_booking_id"]

    async def arrived():
        return await r.ledger.booking("ctrip", oid) is not None

    await r.wait_for(arrived, timeout=30, what="the ctrip booking")
    await r.d.desk_scan()
    doc = await _page(r, headers, "zh")
    assert doc.get("lang") == "zh-CN"
    assert doc.xpath('//nav[@data-testid="nav"]//a[@data-nav="desk"]')[0].text_content().strip() == "前台"
    rows = doc.xpath('//tr[@data-testid="request"]')
    assert sorted(x.get("data-kind") for x in rows) == ["high_floor", "non_smoking"]
    assert all(x.get("data-overdue") == "0" and "bad" not in (x.get("class") or "") for x in rows)
    cells = [x.xpath('.//*[@data-testid="time-left"]')[0].text_content() for x in rows]
    assert all("小时" in c for c in cells), cells
    kinds = {x.xpath("./td")[3].text_content().strip() for x in rows}
    assert kinds == {"无烟", "高楼层"}
    # no English word left in the page's own text (codes, brands and the guest's words aside)
    for bad in doc.xpath('//code | //*[contains(@class, "code")] | //select//option'):
        bad.drop_tree()
    text = doc.xpath("//main")[0].text_content() if doc.xpath("//main") else doc.text_content()
    words = {w for w in re.findall(r"[A-Za-z]{3,}", text)} - {"Ctrip", "Booking", "OTA", "SHA", "BUND", "CNY"}
    assert not words, words
    due = min(q["due_at"] for q in await r.d.desk.requests.list() if q["ota_booking_id"] == oid)
    with time_machine.travel(due, tick=True) as t:
        t.shift(timedelta(minutes=5))
        doc = await _page(r, headers, "en")
        rows = [x for x in doc.xpath('//tr[@data-testid="request"]')]
        assert rows and all(x.get("data-overdue") == "1" and "bad" in x.get("class") for x in rows)
        assert all("late" in x.xpath('.//*[@data-testid="time-left"]')[0].text_content() for x in rows)
        doc = await _page(r, headers, "zh", "/desk?overdue=1")
        assert len(doc.xpath('//tr[@data-testid="request"]')) == 2
        assert all("已超时" in x.xpath('.//*[@data-testid="time-left"]')[0].text_content()
                   for x in doc.xpath('//tr[@data-testid="request"]'))


async def test_a_direct_booking_through_the_page_form(run):
    r = run
    headers = await bearer(r.d, "operator", "desk-form")
    night = r.today() + timedelta(days=13)
    await r.ledger.set_ari(AriChange("SHA-BUND", "ST", night, night, rate_plan="BAR-ST", rooms=1,
                                     price_minor=66600, stop_sell=False), actor="test")
    doc = await _page(r, headers, "en")
    assert doc.xpath('//form[@data-testid="direct-booking"]')
    form = {"property": "SHA-BUND", "source": "walk_in", "room_type": "ST", "rate_plan": "BAR-ST",
            "arrival": night.isoformat(), "departure": (night + timedelta(days=1)).isoformat(), "rooms": "1",
            "guest_name": "Li Lei", "phone": "13612345678", "request": "extra bed"}
    async with r.http.post(r.d.base_url + "/desk/bookings", data=form, headers=headers,
                           allow_redirects=False) as resp:
        assert resp.status == 303, await resp.text()
        where = resp.headers["Location"]
    confirmation = where.split("booked=")[1]
    b = await r.d.desk.direct.show(await r.d.desk.direct.find(confirmation))
    assert b["channel"] == "walk_in" and b["amount_minor"] == 66600
    assert [q["kind"] for q in b["requests"]] == ["extra_bed"]
    async with r.http.post(r.d.base_url + "/desk/bookings", data=form, headers=headers,
                           allow_redirects=False) as resp:  # sold out now: refused with the reason
        assert resp.status == 409 and "no free room" in await resp.text()
