"""The Reports page in a real browser on the running demo (issue 14, "Done when": the page
renders in headless Chromium in both languages with its charts).

The demo's own guests book, change and cancel all along; the test adds a booking on each
OTA's sandbox (and cancels one) so every chart has something of every channel. A viewer
reads the page; the download link is clicked as a person clicks it, and its CSV is checked
against the API's JSON of the same report (both read again until the demo's guests leave
them alone for a moment)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest

from channelmgr import dates
from tests.browser.console import (ABBREVIATIONS, BRANDS, code_words, data_phrases, english_left, login, poll,
                                   screenshot, settle)
from tests.browser.demo import CHANNELS, Client

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("browser")]

PROPERTY = "SHA-BUND"
CHARTS = ("mix", "over-time", "lead-time", "cancellations")

# per chart: is there an echarts instance on it, a canvas, and how many of its pixels are painted
CHART_STATE_JS = r"""
(name) => {
  const el = document.querySelector(`[data-chart="${name}"]`);
  if (!el) return {found: false};
  const inst = window.echarts && window.echarts.getInstanceByDom(el);
  const canvas = el.querySelector('canvas');
  let painted = 0;
  if (canvas) {
    const ctx = canvas.getContext('2d');
    const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 3; i < px.length; i += 4) if (px[i] > 0) painted++;
  }
  const opt = inst ? inst.getOption() : null;
  return {found: true, instance: !!inst, canvas: !!canvas, width: canvas ? canvas.width : 0,
          height: canvas ? canvas.height : 0, painted, drawn: el.getAttribute('data-drawn'),
          series: opt ? opt.series.length : 0,
          points: opt ? opt.series.reduce((n, s) => n + (s.data || []).filter(v => v !== null && v !== undefined).length, 0) : 0};
}
"""


def today():
    return dates.business_date(datetime.now(timezone.utc), "Asia/Shanghai")


def expect():
    from playwright.sync_api import expect as _expect

    return _expect


@pytest.fixture(scope="module")
def viewer(demo):
    return "zhao.lei", demo.add_user("zhao.lei", "viewer")


def _booking(admin, channel: str, oid: str) -> dict | None:
    rows = admin.get(f"/api/v1/bookings?ota_id={oid}&channel={channel}").json()["bookings"]
    return rows[0] if rows else None


@pytest.fixture(scope="module")
def bookings(demo):
    """One booking on each OTA's sandbox (nights 10-12 ahead), and a second Ctrip one cancelled."""
    admin = demo.admin_client()
    night = today() + timedelta(days=10)
    made = []
    for i, ch in enumerate(CHANNELS):
        rt, rp = ("DK", "BAR-DK") if i % 2 == 0 else ("SK", "BAR-SK")
        oid = demo.book(ch, rt, rp, night, night + timedelta(days=1 + i % 2), {"name": "李娜"},
                        amount_minor=60000 + 10000 * i)
        made.append((ch, oid))
    gone = demo.book("ctrip", "DK", "BAR-DK", night + timedelta(days=2), night + timedelta(days=3), {"name": "王芳"})
    for ch, oid in made + [("ctrip", gone)]:
        poll(f"{ch} {oid} in the ledger", lambda: _booking(admin, ch, oid), 90)
    a = Client(demo.sandboxes["ctrip"]).request("POST", "/_sandbox/bookings",
                                                {"action": "cancel", "ota_booking_id": gone})
    assert a.status == 200, a
    poll("the Ctrip cancellation in the ledger",
         lambda: (_booking(admin, "ctrip", gone) or {}).get("status") == "cancelled", 90)
    return made


def _charts(page) -> dict[str, dict]:
    return {name: page.evaluate(CHART_STATE_JS, name) for name in CHARTS}


def _csv_figures(text: str) -> list[tuple]:
    return [(r["period"], r["group"], r["currency"], int(r["bookings"]), int(r["room_nights"]), r["gross"],
             r["cancellation_rate"]) for r in csv.DictReader(io.StringIO(text))]


def _json_figures(doc: dict) -> list[tuple]:
    """What the CSV must say, from the API's JSON: one line per row and currency, then the total."""
    out = []
    for r in doc["rows"] + ([{**doc["totals"], "period": "total", "group": "all"}] if doc["totals"] else []):
        rate = "" if r["cancellation_rate"] is None else f"{r['cancellation_rate'] * 100:.2f}%"
        for mo in r["money"] or [None]:
            out.append((r["period"], r["group"], mo["currency"] if mo else "", r["bookings"], r["room_nights"],
                        f"{mo['gross_minor'] / 100:.2f}" if mo else "", rate))
    return out


def test_the_reports_page_draws_its_charts_in_both_languages_and_downloads_the_apis_figures(
        demo, context, viewer, bookings, tmp_path):
    name, password = viewer
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    login(page, demo.base, name, password)
    mapping = demo.mapping()
    allow = BRANDS | ABBREVIATIONS | code_words(mapping)
    phrases = data_phrases(mapping, ["admin", name])
    start = today().replace(day=1)
    end = today() + timedelta(days=40)
    url = f"/reports?property={PROPERTY}&from={start}&to={end}&by=week&group=channel&basis=stay"
    left: dict[str, list[str]] = {}
    for lang, html_lang in (("en", "en"), ("zh", "zh-CN")):
        page.goto(demo.base + "/")
        page.locator(f"a[data-testid=lang-{lang}]").click()
        expect()(page.locator("html")).to_have_attribute("lang", html_lang)
        page.locator("nav[data-testid=nav] a[data-nav=reports]").click()  # its one nav entry
        expect()(page.locator("a[data-nav=reports]")).to_have_class("here")
        page.goto(demo.base + url)
        for c in CHARTS:
            expect()(page.locator(f"[data-testid=chart-{c}][data-drawn='1']")).to_be_visible()
        settle(page)
        state = _charts(page)
        for c, st in state.items():
            assert st["instance"] and st["canvas"] and st["width"] > 100 and st["height"] > 100, (lang, c, st)
            assert st["painted"] > 2000, (lang, c, st)  # more than an empty title: the chart is drawn
            assert st["series"] >= 1 and st["points"] >= 1, (lang, c, st)
        data = json.loads(page.locator("#report-data").text_content())
        names = [ch["key"] for ch in data["mix"]["channels"]]
        assert set(CHANNELS) <= set(names), names  # every OTA sold in the range (the test's bookings at least)
        assert "ctrip" in [ch["key"] for ch in data["mix"]["channels"]] and any(data["cancellations"]["rate"])
        screenshot(page, tmp_path, f"reports-{lang}")
        page.locator("[data-testid=chart-mix]").scroll_into_view_if_needed()
        if lang == "zh":
            left["reports"] = english_left(page, allow, phrases)
            assert data["words"]["cancellation_rate"] == "取消率"
    # the other forms of the page: per room type by day, and by booking date
    page.goto(demo.base + url.replace("group=channel", "group=room_type").replace("by=week", "by=day"))
    for c in CHARTS:
        expect()(page.locator(f"[data-testid=chart-{c}][data-drawn='1']")).to_be_visible()
    screenshot(page, tmp_path, "reports-room-type-day-zh")
    left["reports room type"] = english_left(page, allow, phrases)
    page.goto(demo.base + url.replace("basis=stay", "basis=booking"))
    expect()(page.locator("[data-testid=chart-over-time][data-drawn='1']")).to_be_visible()
    left["reports booking date"] = english_left(page, allow, phrases)
    assert not errors, errors
    assert not any(left.values()), "English left on the 中文 Reports page:\n" + "\n".join(
        f"  {view}:\n" + "\n".join(f"    {x}" for x in lines) for view, lines in left.items() if lines)

    # the download: clicked, as a person does; the same report's JSON from the API with the same cookie
    page.goto(demo.base + url)
    link = page.locator("a[data-testid=download-channels-csv]")
    href = link.get_attribute("href")
    parts = urlsplit(href)
    assert parts.path == "/api/v1/reports/summary" and parse_qs(parts.query)["format"] == ["csv"]
    json_url = demo.base + href.replace("format=csv", "format=json")

    def steady():
        before = page.request.get(json_url)
        assert before.status == 200, before.text()
        with page.expect_download() as dl:
            link.click()
        text = open(dl.value.path(), encoding="utf-8").read()
        after = page.request.get(json_url).json()
        return (text, after) if after == before.json() else None

    text, doc = poll("the demo's guests to leave the report alone for a moment", steady, 120, every=0.5)[0]
    assert _csv_figures(text) == _json_figures(doc)
    assert doc["group"] == "channel" and {r["group"] for r in doc["rows"]} >= set(CHANNELS)
    xlsx = page.request.get(demo.base + page.locator("a[data-testid=download-xlsx]").get_attribute("href"))
    assert xlsx.status == 200 and xlsx.body()[:2] == b"PK"
