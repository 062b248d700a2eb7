"""The console's HTML pages (issue 11) against a running daemon (tests/sync/harness), on
SQLite and PostgreSQL where the ledger is read; and the catalogs and formatting alone."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from pathlib import Path

import aiohttp
import pytest

from channelmgr.web.pages import i18n
from tests.web.helpers import PASSWORD, make_user
from tests.web.test_api import _booking

LOCALE = Path(i18n.LOCALE_DIR)


# ---- catalogs and formatting (no daemon) ------------------------------------------------------
def _read(lang: str, domain: str):
    from babel.messages.pofile import read_po

    with (LOCALE / lang / "LC_MESSAGES" / f"{domain}.po").open("rb") as f:
        return read_po(f, locale=i18n.BABEL_LOCALE[lang])


def test_every_msgid_of_every_zh_catalog_has_a_translation():
    pos = sorted((LOCALE / "zh" / "LC_MESSAGES").glob("*.po"))
    assert any(p.stem == "console" for p in pos)
    missing = []
    for po in pos:
        for m in _read("zh", po.stem):
            if not m.id:
                continue
            s = m.string
            if not s or (isinstance(s, (tuple, list)) and not all(s)) or m.fuzzy:
                missing.append(f"{po.name}: {m.id!r}")
    assert not missing, "untranslated in 中文:\n" + "\n".join(missing)


def test_every_msgid_the_templates_and_views_use_is_in_the_console_catalog():
    from scripts.console_catalog import extract

    used = {m.id for m in extract() if m.id}
    have = {m.id for po in (LOCALE / "zh" / "LC_MESSAGES").glob("*.po") for m in _read("zh", po.stem) if m.id}
    assert used - have == set(), f"run scripts/console_catalog.py: {sorted(map(str, used - have))[:20]}"
    # and the placeholders survive translation
    for m in _read("zh", "console"):
        if m.id and not isinstance(m.id, tuple):
            assert set(re.findall(r"%\((\w+)\)s", m.id)) == set(re.findall(r"%\((\w+)\)s", m.string)), m.id


def test_the_loader_merges_every_domain_found(tmp_path):
    for lang in ("zh", "en"):
        d = tmp_path / lang / "LC_MESSAGES"
        d.mkdir(parents=True)
        (d / "console.po").write_text('msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
                                      'msgid "Channels"\nmsgstr "渠道"\n', encoding="utf-8")
        (d / "desk.po").write_text('msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
                                   'msgid "Desk"\nmsgstr "前台"\n', encoding="utf-8")
    cats = i18n.load_catalogs(tmp_path)
    assert cats["zh"].gettext("Channels") == "渠道" and cats["zh"].gettext("Desk") == "前台"
    assert cats["zh"].domains == ["console", "desk"]
    assert cats["zh"].gettext("not there") == "not there"


def test_money_dates_and_times_per_language():
    assert i18n.money(128800, "CNY", "zh") == "¥1,288.00"
    assert i18n.money(128800, "CNY", "en") == "¥1,288.00"
    assert i18n.money(0, "CNY", "en") == "¥0.00"
    assert i18n.money(5000, "EUR", "en") == "€50.00"
    d = date(2026, 12, 3)
    assert i18n.day(d, "zh") == "12月3日 周四"
    assert i18n.day(d, "en") == "Thu 3 Dec"
    # in the property's zone: 16:30 UTC is the next morning in Shanghai
    t = datetime(2026, 12, 3, 16, 30, tzinfo=timezone.utc)
    assert i18n.when(t, "Asia/Shanghai", "zh") == "12月4日 00:30:00"
    assert i18n.when(t, "Europe/London", "en") == "3 Dec 16:30:00"
    assert i18n.number(12345, "en") == "12,345"


def test_the_language_follows_the_cookie_then_the_browser():
    assert i18n.pick_lang(None, "zh-CN,zh;q=0.9,en;q=0.8") == "zh"
    assert i18n.pick_lang(None, "en-GB,en;q=0.9") == "en"
    assert i18n.pick_lang(None, None) == "en"
    assert i18n.pick_lang("zh", "en-GB") == "zh"
    assert i18n.pick_lang("xx", "zh-TW") == "zh"


# ---- against a running daemon --------------------------------------------------------------------
def _field(html: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert m, f"no {name} field"
    return m.group(1)


async def _page_session(r, name: str, lang: str = "en") -> aiohttp.ClientSession:
    s = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Accept-Language": lang})
    base = r.d.base_url
    async with s.get(base + "/login") as resp:
        assert resp.status == 200
        token = _field(await resp.text(), "csrf")
    async with s.post(base + "/login?next=/bookings", data={"username": name, "password": PASSWORD, "csrf": token},
                      allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/bookings", await resp.text()
    return s


async def test_pages_need_a_login_and_forms_need_the_csrf_token(run):
    r = run
    base = r.d.base_url
    async with aiohttp.ClientSession() as anon:
        for path in ("/", "/calendar", "/bookings", "/bookings/1", "/sync-log", "/conflicts", "/mappings",
                     "/calendar/cell?property=SHA-BUND&room_type=DK&night=2030-01-01", "/sync-log/1"):
            async with anon.get(base + path, allow_redirects=False) as resp:
                assert resp.status == 303, path
                assert resp.headers["Location"].startswith("/login?next=%2F"), path
        async with anon.post(base + "/calendar/ari", data={"property": "SHA-BUND", "room_type": "DK", "rooms": "0"},
                             allow_redirects=False) as resp:
            assert resp.status == 303
        # a login form without its own token is refused
        async with anon.post(base + "/login", data={"username": "x", "password": "y"}) as resp:
            assert resp.status == 403 and 'data-testid="login-error"' in await resp.text()
    await make_user(r.d, "ops1", "operator")
    s = await _page_session(r, "ops1")
    try:
        async with s.get(base + "/") as resp:
            html = await resp.text()
            assert resp.status == 200 and '<html lang="en">' in html
            assert len(re.findall(r'data-testid="channel-card"', html)) == 4
            assert re.search(r'data-channel="ctrip" data-state="(in_step|behind|failing)"', html)
            csrf = _field(html, "csrf")
        # a change without the token (or with a wrong one) is refused, with it it is accepted
        for data in ({"note": "x"}, {"note": "x", "csrf": "forged"}):
            async with s.post(base + "/conflicts/999999/resolve", data=data, allow_redirects=False) as resp:
                assert resp.status == 403, data
        async with s.post(base + "/conflicts/999999/resolve", data={"note": "x", "csrf": csrf},
                          allow_redirects=False) as resp:
            assert resp.status == 404  # past the CSRF check: there is no such conflict
        # the language switch, remembered in a cookie
        async with s.get(base + "/lang/zh?next=/conflicts", allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/conflicts"
        async with s.get(base + "/conflicts") as resp:
            html = await resp.text()
            assert '<html lang="zh-CN">' in html and "冲突" in html
        async with s.get(base + "/lang/en?next=//evil.example", allow_redirects=False) as resp:
            assert resp.headers["Location"] == "/"
        async with s.post(base + "/logout", data={"csrf": csrf}, allow_redirects=False) as resp:
            assert resp.status == 303
        async with s.get(base + "/", allow_redirects=False) as resp:
            assert resp.status == 303
    finally:
        await s.close()


async def test_a_viewer_sees_masked_guests_and_is_refused_ari_an_operator_sees_them(run):
    r = run
    base = r.d.base_url
    oid, nights = await _booking(r, "for the pages")
    await make_user(r.d, "view1", "viewer")
    await make_user(r.d, "ops2", "operator")
    v = await _page_session(r, "view1", "zh-CN")
    try:
        async with v.get(base + f"/bookings?q={oid}") as resp:
            html = await resp.text()
        assert f'data-ota-id="{oid}"' in html and "张伟" not in html and "13812340000" not in html
        assert re.search(r'data-testid="guest"><code class="guest">张\*</code>', html)
        assert "138****0000" in html and '<html lang="zh-CN">' in html
        bid = re.search(r'data-booking="(\d+)" data-ota-id="' + re.escape(oid), html).group(1)
        async with v.get(base + f"/bookings/{bid}") as resp:
            page = await resp.text()
        assert resp.status == 200 and "张伟" not in page and "13812340000" not in page and "zhang.wei" not in page
        for hook in ("revisions", "channels-told", "raw", "booking-conflicts"):
            assert f'data-testid="{hook}"' in page
        async with v.get(base + f"/calendar?property=SHA-BUND&from={nights[0]}&nights=31") as resp:
            cal = await resp.text()
        assert 'data-testid="ari-set"' not in cal
        m = re.search(rf'data-room-type="DK" data-night="{nights[0]}" data-sold="(\d+)" data-free="(-?\d+)" '
                      r'data-physical="(\d+)"', cal)
        assert m and int(m.group(1)) >= 1 and int(m.group(3)) == 5, m
        csrf = _field(cal, "csrf")
        before = await r.ledger.show("SHA-BUND", nights[0], nights[0])
        async with v.post(base + "/calendar/ari", allow_redirects=False, data={
                "property": "SHA-BUND", "room_type": "DK", "rate_plan": "BAR-DK", "from": str(nights[0]),
                "to": str(nights[0]), "rooms": "0", "csrf": csrf}) as resp:
            assert resp.status == 403 and "收益" in await resp.text()
        assert await r.ledger.show("SHA-BUND", nights[0], nights[0]) == before
        # a cell's drill-down: its journal rows and the pushes that carried it
        async with v.get(base + f"/calendar/cell?property=SHA-BUND&room_type=DK&night={nights[0]}") as resp:
            cell = await resp.text()
        assert resp.status == 200 and 'data-testid="cell-journal"' in cell and 'data-testid="cell-push"' in cell
    finally:
        await v.close()
    o = await _page_session(r, "ops2")
    try:
        async with o.get(base + f"/bookings?q={oid}") as resp:
            html = await resp.text()
        assert "张伟" in html and "13812340000" in html
        bid = re.search(r'data-booking="(\d+)" data-ota-id="' + re.escape(oid), html).group(1)
        async with o.get(base + f"/bookings/{bid}") as resp:
            page = await resp.text()
        # the raw message keeps no credential of the OTA's: Ctrip's MessagePassword is *** as in the sync log
        secrets = re.findall(r'MessagePassword=(?:&#34;|&quot;|")([^"&]*)', page)
        assert secrets and set(secrets) == {"***"}, secrets
        async with o.get(base + "/sync-log") as resp:
            html = await resp.text()
        ids = re.findall(r'data-testid="sync-row" data-id="(\d+)"', html)
        assert ids
        async with o.get(base + f"/sync-log/{ids[0]}") as resp:
            assert resp.status == 200 and "13812340000" not in await resp.text()
        async with o.get(base + "/mappings") as resp:
            html = await resp.text()
            assert 'data-testid="mapping-version"' in html and 'data-testid="mapping-problems"' in html
    finally:
        await o.close()


@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_a_refused_mapping_edit_after_start_up_is_shown_with_file_line_col(run_sqlite, lang):
    r = run_sqlite
    folder = Path(r.d.config.resolve(r.d.config.mappings_dir))
    f = sorted(folder.glob("*.yaml"))[0]
    f.write_text(f.read_text(encoding="utf-8") + "\nnot_a_key: [\n", encoding="utf-8")
    res = await r.d.reloader.reload("test")
    assert not res.ok
    await make_user(r.d, "rev1", "viewer")
    s = await _page_session(r, "rev1", lang)
    try:
        async with s.get(r.d.base_url + "/mappings") as resp:
            html = await resp.text()
        assert re.search(rf"{re.escape(f.name)}:\d+:\d+", html), html[-3000:]
        assert 'data-testid="mapping-diff"' in html and "not_a_key" in html
        async with s.get(r.d.base_url + "/api/v1/mappings") as resp:  # the API says the same
            body = await resp.json()
        assert resp.status == 200 and any(p.startswith(f"{f}:") or f.name in p for p in body["problems"]), body
    finally:
        await s.close()
