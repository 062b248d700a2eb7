"""The console in a real browser on the running demo (issue 11, "Done when").

Headless Debian chromium through Playwright; the demo is `channelmgr run` as a newcomer
starts it (tests/browser/demo.py), on its embedded SQLite (test_console_pg.py runs the
first two on PostgreSQL). Hooks: /work/notes/PAGES_CONTRACT.md."""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit
from datetime import datetime, timedelta, timezone

import pytest

from channelmgr import dates
from channelmgr.web.api import ROUTES
from tests.browser.console import (ABBREVIATIONS, BRANDS, code_words, csrf_of, data_phrases, english_left, login,
                                   poll, screenshot, set_field, settle)
from tests.browser.demo import CHANNELS, Client

# one worker runs them all (pytest-xdist --dist loadgroup): one demo and one browser at a time on CI's 2 cores
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("browser")]

PROPERTY = "SHA-BUND"
USERS = {"viewer": "li.na", "operator": "wang.fang", "revenue": "zhou.jie"}
GOAL_SECONDS = 5.0  # the issue: a booking on Bookings and in the Calendar's sold count within 5 s
# guest data a viewer must never see in full
GUEST = {"name": "张伟明", "phone": "13812345678", "email": "zhang.weiming@example.cn"}
SECRETS = ("伟明", "13812345678", "1381234", "zhang.weiming")


def today():
    return dates.business_date(datetime.now(timezone.utc), "Asia/Shanghai")


def expect():
    from playwright.sync_api import expect as _expect

    return _expect


# ---- fixtures of this module ---------------------------------------------------------------
@pytest.fixture(scope="module")
def users(demo):
    """A viewer, an operator and a revenue user, made with `channelmgr users add NAME --role R`."""
    return {role: (name, demo.add_user(name, role)) for role, name in USERS.items()}


def wait_booking(demo, channel: str, oid: str, timeout: float = 60) -> dict:
    admin = demo.admin_client()

    def found():
        rows = admin.get(f"/api/v1/bookings?ota_id={oid}&channel={channel}").json()["bookings"]
        return rows[0] if rows else None

    return poll(f"booking {channel} {oid} in the ledger", found, timeout)[0]


_nights = iter(range(70, 90))  # nights the demo's own guests never reach (at most 52 ahead)


def make_overbooking(demo) -> dict:
    """An open overbooking conflict: one DK room left on a night, two Ctrip guests for it
    (the second sold by the OTA anyway, as when its own inventory lagged)."""
    night = today() + timedelta(days=next(_nights))
    admin = demo.admin_client()
    a = admin.request("PUT", "/api/v1/ari", {"property": PROPERTY, "room_type": "DK", "from": str(night),
                                             "to": str(night), "rooms": 1, "reason": "测试：只剩一间"})
    assert a.status == 200, a
    oids = [demo.book("ctrip", "DK", "BAR-DK", night, night + timedelta(days=1), {"name": "陈静"}, force=True)
            for _ in range(2)]
    second = wait_booking(demo, "ctrip", oids[1])
    wait_booking(demo, "ctrip", oids[0])

    def conflict():
        rows = admin.get("/api/v1/conflicts?kind=overbooking").json()["conflicts"]
        return next((c for c in rows if c["booking_id"] == second["id"] and c["status"] == "open"), None)

    return poll("the overbooking conflict", conflict, 60)[0]


@pytest.fixture(scope="module")
def guest_booking(demo):
    """A Ctrip booking with a known guest (name, phone, e-mail), in the ledger."""
    night = today() + timedelta(days=60)
    oid = demo.book("ctrip", "SK", "BAR-SK", night, night + timedelta(days=2), GUEST, amount_minor=128800)
    return wait_booking(demo, "ctrip", oid)


def page_urls(booking_id: int) -> list[tuple[str, str]]:
    return [("channels", "/"),
            ("calendar", f"/calendar?property={PROPERTY}&from={today()}&nights=31"),
            ("bookings", "/bookings"),
            ("booking", f"/bookings/{booking_id}"),
            ("sync-log", "/sync-log"),
            ("conflicts", "/conflicts"),
            ("mappings", "/mappings")]


# ---- logged out ------------------------------------------------------------------------------
def test_logged_out_every_page_is_refused_and_the_api_answers_401(demo, context, guest_booking):
    bid, oid = guest_booking["id"], guest_booking["ota_booking_id"]
    urls = [u for _, u in page_urls(bid)] + [
        f"/calendar/cell?property={PROPERTY}&room_type=DK&night={today()}", "/sync-log/1",
        "/bookings?q=" + oid, "/sync-log?channel=ctrip&failed=1"]
    c = Client(demo.base)
    for url in urls:
        a = c.get(url)
        assert a.status == 303, (url, a)
        where = urlsplit(a.headers["Location"])
        assert where.path == "/login" and "next=" in where.query, (url, a.headers["Location"])
        assert oid not in a.text and GUEST["name"] not in a.text and PROPERTY not in a.text, (url, a.text[:500])
    # the forms' POSTs too, and nothing changes
    before = demo.admin_client().get(f"/api/v1/calendar?property={PROPERTY}&from={today()}&to={today()}").json()
    for url, form in (("/calendar/ari", {"property": PROPERTY, "room_type": "DK", "from": str(today()),
                                         "to": str(today()), "rooms": "0"}),
                      ("/conflicts/1/resolve", {"note": "not logged in"}), ("/logout", {})):
        a = c.request("POST", url, form=form)
        assert a.status in (303, 401, 403), (url, a)
    after = demo.admin_client().get(f"/api/v1/calendar?property={PROPERTY}&from={today()}&to={today()}").json()
    assert after["room_types"] == before["room_types"]

    # in the browser: every page lands on the login form, with none of the page's data
    page = context.new_page()
    for url in urls:
        page.goto(demo.base + url)
        assert page.url.split("?")[0] == demo.base + "/login", (url, page.url)
        expect()(page.locator("form[data-testid=login]")).to_be_visible()
        body = page.locator("body").inner_text()  # (the HTML may echo the asked URL in next=)
        assert oid not in body and GUEST["name"] not in body and PROPERTY not in body, (url, body[:500])

    # the API: 401 JSON for every route that needs a login
    for route in ROUTES:
        if route.role is None:
            continue
        path = route.path.replace("{id}", str(bid))
        a = c.request(route.method, path, {})
        assert a.status == 401, (route.method, path, a)
        assert a.json()["error"]


# ---- log in, four channels in step, a booking within 5 s ---------------------------------------
def check_login_and_channels(demo, context, tmp_path, tag: str = "") -> None:
    page = context.new_page()
    page.goto(demo.base + "/")
    assert page.url.split("?")[0] == demo.base + "/login"
    page.locator("form[data-testid=login] input[name=username]").fill("admin")
    page.locator("form[data-testid=login] input[name=password]").fill("not the password")
    page.locator("form[data-testid=login] button[type=submit]").click()
    expect()(page.locator("[data-testid=login-error]")).to_be_visible()
    login(page, demo.base, "admin", demo.admin_password)
    page.goto(demo.base + "/")
    cards = page.locator("[data-testid=channel-card]")
    expect()(cards).to_have_count(4)
    assert sorted(cards.nth(i).get_attribute("data-channel") for i in range(4)) == sorted(CHANNELS)

    def in_step():
        page.reload()
        states = {ch: page.locator(f"[data-testid=channel-card][data-channel={ch}]").get_attribute("data-state")
                  for ch in CHANNELS}
        return states if set(states.values()) == {"in_step"} else None

    # the demo's guests keep booking, so a channel can be a push behind for a moment
    poll("four channels in step", in_step, timeout=120, every=1)
    for ch in CHANNELS:
        card = page.locator(f"[data-testid=channel-card][data-channel={ch}]")
        for hook in ("bookings-today", "pending", "last-success"):
            expect()(card.locator(f"[data-testid={hook}]")).to_have_count(1)
        assert re.fullmatch(r"\d+", card.locator("[data-testid=bookings-today]").inner_text().strip())
    screenshot(page, tmp_path, f"channels-in-step{tag}")


def check_booking_within_goal(demo, context, tmp_path, tag: str = "") -> float:
    page = context.new_page()
    login(page, demo.base, "admin", demo.admin_password)
    cal = context.new_page()
    night = today() + timedelta(days=65)
    cal_url = f"{demo.base}/calendar?property={PROPERTY}&from={night}&nights=31"
    cell_sel = f"td[data-testid=cell][data-room-type=DK][data-night='{night}']"
    cal.goto(cal_url)
    expect()(cal.locator(cell_sel)).to_have_count(1)
    sold_before = int(cal.locator(cell_sel).get_attribute("data-sold"))
    page.goto(demo.base + "/bookings")

    t0 = time.monotonic()
    oid = demo.book("ctrip", "DK", "BAR-DK", night, night + timedelta(days=1), {"name": "黄丽", "phone": "13900001111"})
    seen: dict[str, float] = {}
    row_sel = f"tr[data-testid=booking-row][data-ota-id='{oid}']"
    while len(seen) < 2 and time.monotonic() - t0 < 60:
        if "bookings" not in seen:
            page.goto(demo.base + "/bookings")
            if page.locator(row_sel).count():
                seen["bookings"] = time.monotonic() - t0
        if "calendar" not in seen:
            cal.goto(cal_url)
            if int(cal.locator(cell_sel).get_attribute("data-sold")) == sold_before + 1:
                seen["calendar"] = time.monotonic() - t0
        time.sleep(0.1)
    screenshot(page, tmp_path, f"bookings-new{tag}")
    screenshot(cal, tmp_path, f"calendar-sold{tag}")
    assert set(seen) == {"bookings", "calendar"}, f"after 60 s only seen on {seen} (booking {oid})"
    row = page.locator(row_sel)
    assert row.get_attribute("data-channel") == "ctrip" and row.get_attribute("data-status")
    took = max(seen.values())
    print(f"booking {oid}: on Bookings after {seen['bookings']:.2f} s, in the Calendar after "
          f"{seen['calendar']:.2f} s (goal {GOAL_SECONDS} s)")
    assert took <= GOAL_SECONDS, f"seen after {took:.2f} s ({seen}); the goal is {GOAL_SECONDS} s"
    return took


def test_log_in_and_see_four_channels_in_step(demo, context, tmp_path):
    check_login_and_channels(demo, context, tmp_path)


def test_a_booking_on_a_sandbox_is_on_bookings_and_in_the_calendar_within_5_seconds(demo, context, tmp_path):
    check_booking_within_goal(demo, context, tmp_path)


# ---- 中文 everywhere, and a screenshot of each page in each language ----------------------------
def test_every_page_in_both_languages_and_no_english_left_in_chinese(demo, context, browser, tmp_path, users,
                                                                    guest_booking):
    make_overbooking(demo)  # so the conflicts page and a booking page have one to show
    allow = BRANDS | ABBREVIATIONS | code_words(demo.mapping())
    phrases = data_phrases(demo.mapping(), ["admin"] + [n for n, _ in users.values()])
    page = context.new_page()
    login(page, demo.base, "admin", demo.admin_password)
    failures: dict[str, list[str]] = {}
    for lang, html_lang in (("en", "en"), ("zh", "zh-CN")):
        page.goto(demo.base + "/")
        page.locator(f"a[data-testid=lang-{lang}]").click()
        expect()(page.locator("html")).to_have_attribute("lang", html_lang)
        for name, url in page_urls(guest_booking["id"]):
            page.goto(demo.base + url)
            expect()(page.locator("html")).to_have_attribute("lang", html_lang)
            expect()(page.locator("nav[data-testid=nav]")).to_be_visible()
            expect()(page.locator(f"a[data-testid=lang-{'en' if lang == 'zh' else 'zh'}]")).to_be_visible()
            settle(page)
            screenshot(page, tmp_path, f"{name}-{lang}")
            views = [(name, page)]
            if name == "calendar":  # a cell's drill-down: its journal rows and sync-log calls
                page.locator(f"td[data-testid=cell][data-room-type=DK][data-night='{today()}']").click()
                expect()(page.locator("[data-testid=cell-detail]")).not_to_be_empty()
                settle(page)
                screenshot(page, tmp_path, f"calendar-cell-{lang}")
                views = [("calendar+cell", page)]
            if name == "sync-log":  # a call's request and response
                page.locator("tr[data-testid=sync-row]").first.click()
                settle(page)
                screenshot(page, tmp_path, f"sync-log-call-{lang}")
                views = [("sync-log+call", page)]
            if lang == "zh":
                for view, p in views:
                    left = english_left(p, allow, phrases)
                    if left:
                        failures[view] = left
    # the login page, in the browser's language when no choice was made yet
    for locale, lang, html_lang in (("en-GB", "en", "en"), ("zh-CN", "zh", "zh-CN")):
        ctx = browser.new_context(locale=locale, viewport={"width": 1440, "height": 900})
        try:
            p = ctx.new_page()
            p.goto(demo.base + "/login")
            expect()(p.locator("html")).to_have_attribute("lang", html_lang)
            screenshot(p, tmp_path, f"login-{lang}")
            if lang == "zh":
                left = english_left(p, allow, phrases)
                if left:
                    failures["login"] = left
        finally:
            ctx.close()
    assert not failures, "English left on the 中文 pages:\n" + "\n".join(
        f"  {view}:\n" + "\n".join(f"    {x}" for x in left) for view, left in failures.items())


# ---- conflicts: an operator resolves one on the page ---------------------------------------------
def test_an_operator_resolves_a_conflict_on_the_page_and_who_and_when_are_recorded(demo, context, browser, users,
                                                                                     tmp_path):
    conflict = make_overbooking(demo)
    cid = conflict["id"]
    # a viewer has no resolve form, and posting one anyway is refused
    vctx = browser.new_context()
    try:
        vp = vctx.new_page()
        login(vp, demo.base, *users["viewer"])
        vp.goto(demo.base + "/conflicts")
        card = vp.locator(f"[data-testid=conflict][data-id='{cid}']")
        expect()(card).to_have_count(1)
        expect()(card.locator("form[data-testid=resolve]")).to_have_count(0)
        r = vp.request.post(f"{demo.base}/conflicts/{cid}/resolve", form={"note": "viewer", "csrf": csrf_of(vp)},
                            max_redirects=0)
        assert r.status == 403, r.status
    finally:
        vctx.close()
    assert demo.admin_client().get(f"/api/v1/conflicts/{cid}").json()["status"] == "open"

    name, password = users["operator"]
    page = context.new_page()
    login(page, demo.base, name, password)
    page.goto(demo.base + "/conflicts")
    card = page.locator(f"[data-testid=conflict][data-id='{cid}'][data-kind=overbooking]")
    expect()(card).to_be_visible()
    note = "客人已改到1203房 moved to 1203"
    card.locator("form[data-testid=resolve] textarea[name=note]").fill(note)
    t0 = datetime.now(timezone.utc)
    card.locator("form[data-testid=resolve] [type=submit]").click()
    settle(page)
    got, _ = poll("the conflict resolved", lambda: (lambda c: c if c["status"] == "resolved" else None)(
        demo.admin_client().get(f"/api/v1/conflicts/{cid}").json()), timeout=30)
    assert got["resolved_by"] == name and got["resolution"] == note, got
    at = datetime.fromisoformat(got["resolved_at"])
    assert t0 - timedelta(seconds=5) <= (at if at.tzinfo else at.replace(tzinfo=timezone.utc)) <= \
        datetime.now(timezone.utc) + timedelta(seconds=5)
    # the page shows who and when
    shown = None
    for url in (None, "/conflicts?status=resolved", "/conflicts?status=all", f"/bookings/{got['booking_id']}"):
        if url:
            page.goto(demo.base + url)
        loc = page.locator(f"[data-testid=conflict][data-id='{cid}'] [data-testid=resolved-by]")
        if loc.count():
            shown = loc.first.inner_text()
            break
    screenshot(page, tmp_path, "conflict-resolved")
    assert shown is not None, "no [data-testid=resolved-by] for the resolved conflict on /conflicts or its booking"
    assert name in shown and re.search(r"\d", shown), shown
    # and the journal says who
    rows = demo.admin_client().get("/api/v1/journal?limit=50").json()["rows"]
    assert any(r["entity"] == "conflict" and r["actor"] == f"user:{name}" and r["action"] == "resolve" for r in rows)


# ---- roles: guest data and ARI ------------------------------------------------------------------
def test_a_viewer_sees_masked_guest_data_and_cannot_set_ari_on_the_page_or_the_api(demo, context, users,
                                                                                  guest_booking, tmp_path):
    name, password = users["viewer"]
    bid, oid = guest_booking["id"], guest_booking["ota_booking_id"]
    page = context.new_page()
    login(page, demo.base, name, password)
    for url in ("/bookings", f"/bookings?q={oid}", f"/bookings/{bid}"):
        page.goto(demo.base + url)
        settle(page)
        html = page.content()
        for secret in SECRETS:
            assert secret not in html, (url, secret)
    page.goto(f"{demo.base}/bookings?q={oid}")
    row = page.locator(f"tr[data-testid=booking-row][data-ota-id='{oid}']")
    expect()(row).to_have_count(1)
    assert re.fullmatch(r"张\*+", row.locator("[data-testid=guest]").inner_text().strip())
    page.goto(f"{demo.base}/bookings/{bid}")
    assert "138****5678" in page.locator("body").inner_text()
    screenshot(page, tmp_path, "booking-as-viewer")

    # ARI: no form on the calendar, and the POST is refused whatever the client does
    night = today() + timedelta(days=40)
    page.goto(f"{demo.base}/calendar?property={PROPERTY}&from={today()}&nights=31")
    expect()(page.locator("form[data-testid=ari-set]")).to_have_count(0)
    before = demo.admin_client().get(f"/api/v1/calendar?property={PROPERTY}&from={night}&to={night}").json()
    r = page.request.post(f"{demo.base}/calendar/ari", max_redirects=0, form={
        "property": PROPERTY, "room_type": "DK", "rate_plan": "BAR-DK", "from": str(night), "to": str(night),
        "price": "999.00", "csrf": csrf_of(page)})
    assert r.status == 403, r.status

    # the API, with the viewer's token (`channelmgr users token`)
    api = Client(demo.base)
    api.headers["Authorization"] = f"Bearer {demo.token(name)}"
    a = api.get(f"/api/v1/bookings?ota_id={oid}")
    assert a.status == 200, a
    g = a.json()["bookings"][0]["guest"]
    assert re.fullmatch(r"张\*+", g["name"]) and g["phone"] == "138****5678", g
    one = api.get(f"/api/v1/bookings/{bid}")
    assert one.status == 200
    for secret in SECRETS:
        assert secret not in a.text and secret not in one.text, secret
    a = api.request("PUT", "/api/v1/ari", {"property": PROPERTY, "room_type": "DK", "rate_plan": "BAR-DK",
                                           "from": str(night), "to": str(night), "price": "999.00"})
    assert a.status == 403 and a.json()["error"], a
    after = demo.admin_client().get(f"/api/v1/calendar?property={PROPERTY}&from={night}&to={night}").json()
    assert after["rates"] == before["rates"] and after["room_types"] == before["room_types"]


def test_an_operator_sees_guest_data_unmasked_on_the_page_and_the_api(demo, context, users, guest_booking):
    name, password = users["operator"]
    bid, oid = guest_booking["id"], guest_booking["ota_booking_id"]
    page = context.new_page()
    login(page, demo.base, name, password)
    page.goto(f"{demo.base}/bookings?q={oid}")
    row = page.locator(f"tr[data-testid=booking-row][data-ota-id='{oid}']")
    expect()(row).to_have_count(1)
    assert row.locator("[data-testid=guest]").inner_text().strip() == GUEST["name"]
    page.goto(f"{demo.base}/bookings/{bid}")
    text = page.locator("body").inner_text()
    assert GUEST["name"] in text and GUEST["phone"] in text
    api = Client(demo.base)
    api.headers["Authorization"] = f"Bearer {demo.token(name)}"
    a = api.get(f"/api/v1/bookings?ota_id={oid}")
    g = a.json()["bookings"][0]["guest"]
    assert (g["name"], g["phone"]) == (GUEST["name"], GUEST["phone"]), g
    # an operator resolves conflicts (test above) but does not set ARI: that is the revenue role's
    a = api.request("PUT", "/api/v1/ari", {"property": PROPERTY, "room_type": "DK", "rate_plan": "BAR-DK",
                                           "from": str(today()), "to": str(today()), "price": "999.00"})
    assert a.status == 403, a


def test_a_revenue_user_sets_ari_through_the_page_form_and_the_api(demo, context, users, tmp_path):
    name, password = users["revenue"]
    page = context.new_page()
    login(page, demo.base, name, password)
    night = today() + timedelta(days=20)
    page.goto(f"{demo.base}/calendar?property={PROPERTY}&from={today()}&nights=31")
    form = page.locator("form[data-testid=ari-set]")
    expect()(form).to_be_visible()
    for field, v in (("property", PROPERTY), ("room_type", "ES"), ("rate_plan", "BAR-ES"), ("from", str(night)),
                     ("to", str(night + timedelta(days=1))), ("rooms", "6"), ("price", "2345.00")):
        set_field(form, field, v)
    form.locator("[type=submit]").click()
    settle(page)
    admin = demo.admin_client()

    def applied():
        cal = admin.get(f"/api/v1/calendar?property={PROPERTY}&from={night}&to={night + timedelta(days=1)}").json()
        es = next(rt for rt in cal["room_types"] if rt["room_type"] == "ES")["nights"]
        prices = [r["price_minor"] for r in cal["rates"] if r["rate_plan"] == "BAR-ES"]
        return (cal if [n["physical"] for n in es] == [6, 6] and prices == [234500, 234500] else None)

    poll("the page's ARI change in the ledger", applied, timeout=30)
    page.goto(f"{demo.base}/calendar?property={PROPERTY}&from={today()}&nights=31")
    cell = page.locator(f"td[data-testid=cell][data-room-type=ES][data-night='{night}']")
    assert cell.get_attribute("data-physical") == "6"
    screenshot(page, tmp_path, "calendar-after-ari")
    rows = admin.get("/api/v1/journal?limit=50").json()["rows"]
    assert any(r["actor"] == f"user:{name}" and r["entity"] != "user" for r in rows), rows[:5]

    api = Client(demo.base)
    api.headers["Authorization"] = f"Bearer {demo.token(name)}"
    a = api.request("PUT", "/api/v1/ari", {"property": PROPERTY, "room_type": "ES", "from": str(night),
                                           "to": str(night), "rooms": 7})
    assert a.status == 200 and a.json()["cells_changed"] >= 1, a
    cal = admin.get(f"/api/v1/calendar?property={PROPERTY}&from={night}&to={night}").json()
    assert next(rt for rt in cal["room_types"] if rt["room_type"] == "ES")["nights"][0]["physical"] == 7
