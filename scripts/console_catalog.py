#!/usr/bin/env python3
"""Update the console's gettext catalogs (domain `console`) from its templates and views.

Extracts every msgid of channelmgr/web/templates/*.html (Jinja2's Babel extractor) and of
channelmgr/web/pages/*.py (``_()``, ``gettext``, ``ngettext``), then rewrites
channelmgr/web/locale/{zh,en}/LC_MESSAGES/console.po keeping the translations already there
(new msgids come in with an empty msgstr, to be translated; gone ones are dropped).
Other domains (desk.po, reports.po) are theirs and not touched.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "channelmgr" / "web"
DOMAIN = "console"
METHODS = [("templates/**.html", "jinja2"), ("pages/**.py", "python")]
OPTIONS = {"templates/**.html": {"extensions": "jinja2.ext.i18n", "trim_blocks": "true",
                                 "lstrip_blocks": "true"}}
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2)}
OWN = ("templates/desk", "templates/reports", "pages/desk", "pages/reports")  # other domains' files


def extract() -> Catalog:
    cat = Catalog(domain=DOMAIN)
    for filename, lineno, message, comments, context in extract_from_dir(
            str(WEB), METHODS, keywords=KEYWORDS, options_map=OPTIONS, comment_tags=("i18n:",)):
        if filename.startswith(OWN):
            continue
        cat.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return cat


def others(lang: str) -> set:
    """msgids another domain (desk.po, reports.po) already carries: theirs, not ours."""
    out = set()
    for po in (WEB / "locale" / lang / "LC_MESSAGES").glob("*.po"):
        if po.stem != DOMAIN:
            with po.open("rb") as f:
                out |= {m.id for m in read_po(f) if m.id}
    return out


def update(lang: str, template: Catalog) -> int:
    path = WEB / "locale" / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    theirs = others(lang)
    old = {}
    if path.exists():
        with path.open("rb") as f:
            for m in read_po(f):
                if m.id:
                    old[m.id] = m.string
    cat = Catalog(locale={"zh": "zh_Hans_CN", "en": "en_GB"}[lang], domain=DOMAIN, project="channelmgr",
                  charset="utf-8")
    untranslated = 0
    for m in template:
        if not m.id or (m.id in theirs and m.id not in old):
            continue
        s = old.get(m.id, ("", "") if isinstance(m.id, tuple) else "")
        cat.add(m.id, s, m.locations)
        if lang == "zh" and (not s or (isinstance(s, tuple) and not all(s))):
            untranslated += 1
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        write_po(f, cat, width=100, omit_header=False, sort_output=True)
    return untranslated


def main() -> int:
    template = extract()
    missing = update("zh", template)
    update("en", template)
    print(f"{len(template)} msgids; {missing} without a zh translation", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
