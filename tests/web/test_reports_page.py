"""The console's Reports page (issue 14) against a running daemon, on SQLite and PostgreSQL:
the figures it embeds and tables are the API's own, its downloads are the API's CSV/XLSX
with the session cookie alone, a viewer may read it, bad input is a 400, and every word of
the page is in the reports catalog with a 中文 translation."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, datetime, timedelta, timezone
from html import unescape
from pathlib import Path

import aiohttp
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from channelmgr.ledger.types import IncomingBooking, LocalStay
from channelmgr.web.pages import i18n
from tests.web.helpers import make_user
from tests.web.test_pages import _page_session

WEB = Path(__file__).resolve().parents[2] / "channelmgr" / "web"
Q = {"property": "SHA-BUND", "from": "2026-12-01", "to": "2026-12-31", "by": "week", "group": "channel",
     "basis": "stay"}


async def _bookings(ledger) -> None:
    """Booking.com DK 2 nights at 888.00; Ctrip SK 1 night x 2 rooms at 500.00; a Ctrip
    booking made and cancelled; a website booking DK 1 night at 600.00. All made on 1 Dec."""
    first = date(2026, 12, 24)
    made = datetime(2026, 12, 1, 2, tzinfo=timezone.utc)
    for channel, oid, rt, prices, rooms, action in (("booking", "BK1", "DK", [88800, 88800], 1, "new"),
                                                     ("ctrip", "CT1", "SK", [50000], 2, "new"),
                                                     ("ctrip", "CT2", "SK", [50000], 1, "new"),
                                                     ("website", "W1", "DK", [60000], 1, "new"),
                                                     ("ctrip", "CT2", "SK", [], 1, "cancel")):
        stays = (LocalStay(rt, f"BAR-{rt}", rt, f"BAR-{rt}",
                           tuple((first + timedelta(days=i), p) for i, p in enumerate(prices)), rooms),) if prices else ()
        await ledger.apply_booking(IncomingBooking(
            channel=channel, hotel_code="X", property="SHA-BUND", ota_booking_id=oid,
            revision="2" if action == "cancel" else "1", action=action, stays=stays,
            amount_minor=sum(prices) * rooms if prices else None, currency="CNY", booked_at=made))


def _data(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="report-data"[^>]*>(.*?)</script>', html, re.S)
    assert m, "no chart data in the page"
    return json.loads(m.group(1))


async def test_the_page_shows_the_apis_figures_and_its_downloads_are_the_apis(run):
    r = run
    await _bookings(r.d.rt.ledger)
    await make_user(r.d, "rep.viewer", "viewer")
    s = await _page_session(r, "rep.viewer", "en")
    base = r.d.base_url
    try:
        async with s.get(base + "/reports", params=Q) as resp:
            html = await resp.text()
            assert resp.status == 200, html[-2000:]
        assert re.search(r'data-nav="reports" class="here"', html)
        for hook in ("chart-mix", "chart-over-time", "chart-lead-time", "chart-cancellations", "report-table",
                     "report-channels", "download-csv", "download-xlsx"):
            assert f'data-testid="{hook}"' in html, hook
        assert "/static/vendor/echarts/echarts.min.js" in html and "/static/reports.js" in html
        data = _data(html)
        # the API's figures, with the same session cookie (a GET needs no CSRF header)
        async with s.get(base + "/api/v1/reports/summary", params=Q) as resp:
            assert resp.status == 200
            table = await resp.json()
        mix_q = {k: v for k, v in Q.items() if k != "by"}
        async with s.get(base + "/api/v1/reports/summary", params=mix_q) as resp:
            assert resp.status == 200
            mix = await resp.json()
        groups = [x["group"] for x in mix["rows"]]
        assert groups == ["booking", "ctrip", "website"], groups
        assert [c["key"] for c in data["mix"]["channels"]] == groups
        assert [c["name"] for c in data["mix"]["channels"]] == ["Booking.com", "Ctrip", "website"]
        assert data["mix"]["room_nights"] == [2, 2, 1] == [x["room_nights"] for x in mix["rows"]]
        assert data["mix"]["room_nights_share"] == [x["room_nights_share"] for x in mix["rows"]]
        assert abs(sum(data["mix"]["room_nights_share"]) - 1) < 1e-9
        assert data["mix"]["revenue_share"][0]["currency"] == "CNY"
        # by hand: 177600 + 100000 + 60000 = 337600
        assert data["mix"]["revenue_share"][0]["shares"] == [177600 / 337600, 100000 / 337600, 60000 / 337600]
        # cancellations by booking date: ctrip made 2, cancelled 1
        assert data["cancellations"]["channels"] == ["Booking.com", "Ctrip", "website"]
        assert data["cancellations"]["rate"] == [0.0, 0.5, 0.0]
        assert data["cancellations"]["booked"] == [1, 2, 1]
        # lead time: booked 1 Dec (Shanghai), arriving 24 Dec: 23 days, bucket 15-30
        assert data["lead_time"]["buckets"] == ["0", "1-3", "4-7", "8-14", "15-30", "31+"]
        assert [s_["counts"] for s_ in data["lead_time"]["series"]] == [[0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 1, 0],
                                                                      [0, 0, 0, 0, 1, 0]]
        # over time: the weeks of the table's rows, occupancy and ADR per channel as the API has them
        ot = data["over_time"]
        # (week 49 has rows too: the bookings made then, for the cancellation rate, by booking date)
        assert ot["periods"] == sorted({x["period"] for x in table["rows"]}) == ["2026-W49", "2026-W52"]
        by = {x["key"]: x for x in ot["series"]}
        api_rows = {(x["period"], x["group"]): x for x in table["rows"]}
        for k, x in by.items():
            for i, p in enumerate(ot["periods"]):
                row = api_rows.get((p, k))
                assert x["occupancy"][i] == (row["occupancy"] if row else None)
                assert x["adr_minor"][i] == (row["money"][0]["adr_minor"] if row and row["money"] else None)
        assert by["booking"]["adr_minor"] == [None, 88800] and by["ctrip"]["adr_minor"] == [None, 50000]
        assert ot["stacked"] is True and ot["has_occupancy"] is True
        # the tables: one row per week and channel, and the total
        assert len(re.findall(r'data-testid="period-row"', html)) == len(table["rows"]) + 1
        assert re.search(r'data-testid="channel-row" data-group="ctrip" data-room-nights="2" data-bookings="1"', html)
        assert "¥1,776.00" in html and "¥3,376.00" in html  # money per currency, with its sign
        assert "no channel reports them yet" in html  # no-shows: what 0 means
        # the download links are the API's, and answer with the session cookie alone
        hrefs = dict(re.findall(r'href="([^"]+)" data-testid="(download-[a-z-]+)"', html))
        links = {v: unescape(k) for k, v in hrefs.items()}
        async with s.get(base + links["download-csv"]) as resp:
            assert resp.status == 200 and resp.content_type == "text/csv"
            rows = list(csv.DictReader(io.StringIO(await resp.text())))
        want = {(x["period"], x["group"]): x for x in table["rows"]}
        assert len(rows) == len(want) + 1 and rows[-1]["period"] == "total"
        for row in rows[:-1]:
            x = want[(row["period"], row["group"])]
            assert int(row["room_nights"]) == x["room_nights"] and int(row["bookings"]) == x["bookings"]
            assert row["gross"] == (f"{x['money'][0]['gross_minor'] / 100:.2f}" if x["money"] else "")
            assert row["cancellation_rate"] == ("" if x["cancellation_rate"] is None
                                                else f"{x['cancellation_rate'] * 100:.2f}%")
        async with s.get(base + links["download-channels-csv"]) as resp:
            rows = list(csv.DictReader(io.StringIO(await resp.text())))
        assert [(x["group"], x["room_nights"], x["cancellation_rate"]) for x in rows] == [
            ("booking", "2", "0.00%"), ("ctrip", "2", "50.00%"), ("website", "1", "0.00%"), ("all", "5", "25.00%")]
        async with s.get(base + links["download-xlsx"]) as resp:
            assert resp.status == 200 and (await resp.read())[:2] == b"PK"
        # in 中文: the page's words translated
        async with s.get(base + "/lang/zh?next=/reports", allow_redirects=False):
            pass
        async with s.get(base + "/reports", params=Q) as resp:
            zh = await resp.text()
        assert '<html lang="zh-CN">' in zh and "渠道结构" in zh and "各渠道取消率" in zh and "官网" in zh
        assert _data(zh)["words"]["occupancy"] == "出租率"
        # room types: the table per room type, cancellations too (no hint that they are per channel only)
        async with s.get(base + "/reports", params={**Q, "group": "room_type", "by": "day"}) as resp:
            rt = await resp.text()
            assert resp.status == 200
        assert re.search(r'data-period="2026-12-24" data-group="DK"', rt) and _data(rt)["over_time"]["stacked"] is False
        assert "取消只按渠道统计" not in rt and "per channel only" not in rt
        # refused input: a 400 page with the form, not a traceback
        async with s.get(base + "/reports", params={**Q, "to": "2026-11-01"}) as resp:
            assert resp.status == 400 and 'data-testid="report-refused"' in await resp.text()
        async with s.get(base + "/reports", params={**Q, "by": "year"}) as resp:
            assert resp.status == 400
        async with s.get(base + "/reports", params={**Q, "from": "2026-02-31"}) as resp:
            assert resp.status == 400
    finally:
        await s.close()
    async with aiohttp.ClientSession() as anon:
        async with anon.get(base + "/reports", allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"].startswith("/login?next=%2Freports")


def test_the_chart_data_cannot_close_its_script_element():
    from jinja2 import Environment

    out = Environment(autoescape=True).from_string('<script type="application/json">{{ d|tojson }}</script>').render(
        d={"name": "</script><script>alert(1)</script>", "q": "'&"})
    inner = out[len('<script type="application/json">'):-len("</script>")]
    assert "<" not in inner and ">" not in inner and "&" not in inner.replace("\\u0026", "")
    assert json.loads(inner)["name"] == "</script><script>alert(1)</script>"


def test_every_word_of_the_reports_page_is_in_its_catalog_and_translated():
    methods = [("templates/reports/**.html", "jinja2"), ("pages/reports.py", "python")]
    opts = {"templates/reports/**.html": {"extensions": "jinja2.ext.i18n", "trim_blocks": "true",
                                          "lstrip_blocks": "true"}}
    used = {msg for _, _, msg, _, _ in extract_from_dir(str(WEB), methods, options_map=opts,
                                                        keywords={"_": None, "gettext": None, "ngettext": (1, 2)})}
    used.add("Reports")  # the nav's word (pages/__init__.py)
    for lang in ("zh", "en"):
        with (WEB / "locale" / lang / "LC_MESSAGES" / "reports.po").open("rb") as f:
            cat = read_po(f, locale=i18n.BABEL_LOCALE[lang])
        have = {m.id: m.string for m in cat if m.id}
        assert used - set(have) == set(), (lang, sorted(used - set(have)))
        if lang == "zh":
            assert not [k for k in used if not have[k]]
            for k in used:
                assert set(re.findall(r"%\((\w+)\)s", k)) == set(re.findall(r"%\((\w+)\)s", have[k])), k
