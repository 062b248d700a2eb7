#!/usr/bin/env python3
"""Copy the console's front-end files from pinned npm packages into
channelmgr/web/static/vendor/<package>/, with their licences (issue 11).

The copied files are committed, so an installed channelmgr needs no network at run time;
this script re-creates them (it needs `npm` and the npm registry):

    python scripts/vendor_assets.py            # fetch the pinned versions and copy
    python scripts/vendor_assets.py --check    # only check the files are there
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "channelmgr" / "web" / "static" / "vendor"

# package -> (exact version, files to copy from the package, relative to its root)
PINNED: dict[str, tuple[str, tuple[str, ...]]] = {
    "htmx.org": ("2.0.4", ("dist/htmx.min.js",)),
    "echarts": ("5.5.1", ("dist/echarts.min.js",)),
}
LICENCES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "NOTICE")


def fetch(name: str, version: str, tmp: Path) -> Path:
    out = subprocess.run(["npm", "pack", f"{name}@{version}", "--json", "--pack-destination", str(tmp)],
                         check=True, capture_output=True, text=True, cwd=tmp).stdout
    tgz = tmp / json.loads(out)[0]["filename"]
    dest = tmp / name
    with tarfile.open(tgz) as tar:
        tar.extractall(dest, filter="data")
    return dest / "package"


def vendor(name: str, version: str, files: tuple[str, ...], tmp: Path) -> list[Path]:
    pkg = fetch(name, version, tmp)
    meta = json.loads((pkg / "package.json").read_text())
    if meta.get("version") != version:
        raise SystemExit(f"{name}: npm gave {meta.get('version')}, pinned {version}")
    target = VENDOR / name
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    copied = []
    for f in files:
        shutil.copy(pkg / f, target / Path(f).name)
        copied.append(target / Path(f).name)
    lic = [p for p in LICENCES if (pkg / p).exists()]
    if not lic:
        raise SystemExit(f"{name}@{version} has no licence file; refusing to vendor it")
    for p in lic:
        shutil.copy(pkg / p, target / p)
        copied.append(target / p)
    (target / "VERSION").write_text(f"{name}@{version} (npm; copied by scripts/vendor_assets.py)\n")
    return copied


def check() -> int:
    missing = [f"{n}/{Path(f).name}" for n, (_, files) in PINNED.items() for f in files
               if not (VENDOR / n / Path(f).name).exists()]
    missing += [f"{n}/VERSION" for n, (v, _) in PINNED.items()
                if not (VENDOR / n / "VERSION").exists() or f"@{v} " not in (VENDOR / n / "VERSION").read_text()]
    for m in missing:
        print(f"missing or not the pinned version: {VENDOR / m}", file=sys.stderr)
    return 1 if missing else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    if a.check:
        return check()
    with tempfile.TemporaryDirectory(prefix="channelmgr-vendor-") as t:
        for name, (version, files) in PINNED.items():
            for p in vendor(name, version, files, Path(t)):
                print(p.relative_to(ROOT))
    return check()


if __name__ == "__main__":
    sys.exit(main())
