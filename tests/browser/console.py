"""Helpers of the browser tests: Chromium's flags, logging in through the form, the visible
text of a page, the allow-list of words a 中文 page may keep, screenshots.

The hooks used are the ones /work/notes/PAGES_CONTRACT.md fixes (data-testid and data-*)."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

from channelmgr.demo import NAMES, REQUESTS

CHROMIUM = "/usr/bin/chromium"
# Debian's chromium, never a downloaded one; no network of its own, no first-run pages
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 60_000  # a loaded 2-core CI machine: waits are generous (except the 5 s goal)

# What a 中文 page may keep in Latin letters (the contract's allow-list): OTA brands, the
# abbreviations and units, and data that is not ours to translate (the hotel's names as the
# mapping gives them, the demo guests' names and requests, user names, the demo's own actor
# and reason in the journal). Codes and ids are skipped by their <code> / class="code" mark.
BRANDS = {"Booking", "com", "Ctrip", "Trip", "Fliggy", "Meituan"}
ABBREVIATIONS = {"API", "ID", "OTA", "PMS", "ARI", "YAML", "JSON", "CSV", "XLSX", "RevPAR", "ADR", "ms", "s",
                 "CNY", "UTC"}


def words(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z]{2,}", text or ""))


def code_words(mapping) -> set[str]:
    """The codes a page may show where no <code> mark fits (an <option>, a heading): the
    property's, room types' and rate plans' codes, and the channels' own names."""
    codes = [mapping.code] + list(mapping.room_types) + list(mapping.rate_plans)
    return words(" ".join(codes)) | {"booking", "ctrip", "fliggy", "meituan"}


def data_phrases(mapping, users=()) -> list[str]:
    """Data shown as it was given, not ours to translate: the hotel's, room types' and rate
    plans' names from the mapping (each whole and its Latin part alone), the demo guests'
    names and requests, user names, the demo's journal actor and reason. They are removed
    as whole phrases before the words are checked, so "room" or "nights" in a plan's name
    does not excuse an untranslated "nights" elsewhere. Longest first."""
    names = [mapping.file.property.name] + [rt.name for rt in mapping.room_types.values()] + \
        [p.name for p in mapping.rate_plans.values()]
    out = set(users) | {f"user:{u}" for u in users} | set(NAMES) | {r for r in REQUESTS if r} | {"demo prices", "user:admin", "demo"}
    for n in names:
        out.add(n)
        out |= {m.strip() for m in re.findall(r"[A-Za-z][A-Za-z0-9 ,.%'()\-]*[A-Za-z0-9)%]", n)}
    return sorted(out, key=len, reverse=True)


# the visible text of the page: text nodes that are rendered, outside code, pre, script,
# style and the switch to English; plus what a person reads in attributes (placeholder, title, aria-label, button values)
# and the window's title
VISIBLE_TEXT_JS = r"""
() => {
  // the switch to English says "English" (each language is named in itself)
  const skip = 'code, .code, pre, script, style, noscript, template, [data-testid=lang-en]';
  const parts = [document.title];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const n = walker.currentNode, el = n.parentElement;
    if (!el || !n.textContent.trim() || el.closest(skip)) continue;
    if (el.checkVisibility && !el.checkVisibility({checkOpacity: true, checkVisibilityCSS: true})) continue;
    parts.push(n.textContent.trim());
  }
  for (const el of document.querySelectorAll('[placeholder], [title], [aria-label], input[type=submit], input[type=button]')) {
    if (el.closest(skip)) continue;
    for (const a of ['placeholder', 'title', 'aria-label']) if (el.getAttribute(a)) parts.push(el.getAttribute(a));
    if (el.matches('input[type=submit], input[type=button]') && el.value) parts.push(el.value);
  }
  for (const o of document.querySelectorAll('option')) if (!o.closest(skip)) parts.push(o.textContent.trim());
  return parts.join('\n');
}
"""


def english_left(page, allow: set[str], phrases: list[str] = ()) -> list[str]:
    """Each line of visible text that still has a Latin word outside the allow-list."""
    text = page.evaluate(VISIBLE_TEXT_JS)
    left = []
    for line in text.splitlines():
        rest = line
        for ph in phrases:
            rest = rest.replace(ph, " ")
        bad = sorted(w for w in words(rest) if w not in allow)
        if bad:
            left.append(f"{', '.join(bad)}  <- {line.strip()[:120]!r}")
    return left


def login(page, base: str, name: str, password: str) -> None:
    """Through the login form, as a person does."""
    r = page.goto(f"{base}/login")
    assert r is not None and r.status == 200, f"GET /login answered {r.status if r else None}: no login page"
    form = page.locator("form[data-testid=login]")
    form.locator("input[name=username]").fill(name)
    form.locator("input[name=password]").fill(password)
    form.locator("button[type=submit]").click()
    page.locator("[data-testid=user]").wait_for(timeout=TIMEOUT_MS)
    assert name in page.locator("[data-testid=user]").inner_text()


def settle(page, timeout_ms: int = 8000) -> None:
    """Until the page's requests are done (htmx fragments), or a while if it polls on and on."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_load_state("networkidle", timeout=timeout_ms)
    except PlaywrightTimeout:
        pass


def csrf_of(page) -> str:
    """The CSRF token the page's own forms carry (the logout form is on every page)."""
    return page.locator("form[data-testid=logout] input[name=csrf]").get_attribute("value")


def set_field(form, name: str, value) -> None:
    el = form.locator(f"[name={name}]").first
    tag = el.evaluate("e => e.tagName.toLowerCase() + ':' + (e.type || '')")
    if tag.endswith(":hidden"):  # the page fixed it (the property being shown): it must be the one meant
        assert el.input_value() == str(value), (name, el.input_value(), value)
    elif tag.startswith("select"):
        el.select_option(str(value))
    elif tag.endswith(":checkbox"):
        el.set_checked(bool(value))
    else:
        el.fill(str(value))


def screens_dir() -> Path | None:
    """Where the screenshots are copied for a person to look at (besides the test's tmp_path)."""
    where = os.environ.get("CHANNELMGR_SCREENS_DIR")
    if where:
        return Path(where)
    if os.environ.get("CI", "").lower() not in ("1", "true", "yes") and Path("/work/notes").is_dir():
        return Path("/work/notes/screens")
    return None


def screenshot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / "screens" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    extra = screens_dir()
    if extra is not None:
        try:
            extra.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, extra / path.name)
        except OSError:
            pass
    return path


def poll(what: str, check, timeout: float = 60.0, every: float = 0.25):
    """check() until it returns something true; its value and the seconds it took."""
    t0 = time.monotonic()
    while True:
        got = check()
        if got:
            return got, time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)
