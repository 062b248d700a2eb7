"""`channelmgr mappings check|diff`: is an edit valid, and what would each OTA get from it?

Neither command changes anything: `check` does not even open the ledger, and `diff`
reads it without putting the edited file in force or pushing a thing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_OK, EXIT_ERROR = 0, 1


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if v < 1 or v > 730:
        raise argparse.ArgumentTypeError("give a number of days from 1 to 730")
    return v


def register(sub, common) -> None:
    m = sub.add_parser("mappings", parents=[common], help="check room and rate mappings, preview an edit",
                       description="The room and rate mappings in mappings/*.yaml: one file per hotel, edited "
                                   "by revenue staff. Check an edit, and see what it would change on each OTA "
                                   "before it goes into force.")
    ms = m.add_subparsers(dest="mappings_command", metavar="ACTION")
    m.set_defaults(help_parser=m)  # without its action: help on stderr, status 2, like `db` and `ari`

    c = ms.add_parser("check", parents=[common], help="check mapping files and say what is wrong, line by line",
                      description="Check mapping files: their keys and values, and that every room type, rate "
                                  "plan, code and currency fits together and fits what each OTA accepts. "
                                  "Prints one line per valid file, or every problem found as "
                                  "file:line:col: sentence, and exits with status 1.")
    c.add_argument("paths", nargs="*", metavar="PATH",
                   help="mapping files or folders (default: the mappings folder of the config)")
    c.set_defaults(func=cmd_check)

    d = ms.add_parser("diff", parents=[common], help="what an edited file would change on each OTA",
                      description="Compare an edited mapping file with the version in force and list, per "
                                  "channel, the cells (room, rate, night) whose rooms to sell, prices or "
                                  "restrictions would change over the next days, old -> new. Nothing is "
                                  "pushed and nothing is put in force.")
    d.add_argument("paths", nargs="+", metavar="PATH",
                   help="the edited file(s) or a folder; each replaces the file of the same name in force")
    d.add_argument("--days", type=_positive, default=30, metavar="N", help="nights to compare (default 30)")
    d.add_argument("--samples", type=_positive, default=10, metavar="N",
                   help="example lines per channel (default 10)")
    d.add_argument("--json", action="store_true", help="print every changed cell as JSON for other programs")
    d.set_defaults(func=cmd_diff)


def _mappings_dir(args: argparse.Namespace) -> Path:
    from channelmgr.config import load_config

    cfg = load_config(args.config)
    return cfg.resolve(cfg.mappings_dir)


def _shown(p: Path) -> Path:
    """A path as the person typed it or, for the config's folder, relative to where they are."""
    try:
        return p.resolve().relative_to(Path.cwd().resolve()) if p.is_absolute() else p
    except ValueError:
        return p


def cmd_check(args: argparse.Namespace) -> int:
    from channelmgr.mapping.loader import check_paths, mapping_files, summary

    paths = [Path(p) for p in args.paths] or [_mappings_dir(args)]
    files = mapping_files(paths)
    if not files:
        print(f"channelmgr: no mapping files (*.yaml) in {', '.join(str(p) for p in paths)}", file=sys.stderr)
        return EXIT_ERROR
    result = check_paths([_shown(p) for p in paths])
    bad = {p.file for p in result.problems}
    for path, pm in result.properties.items():
        if path not in bad:
            print(summary(path, pm))
    if result.problems:
        # every problem and warning in file order (a warning does not refuse a file)
        for p in sorted(result.problems + result.warnings, key=lambda p: (p.file, p.line, p.col)):
            print(str(p), file=sys.stderr)
        n = len(result.problems)
        print(f"{n} problem{'s' if n != 1 else ''} in {len(bad)} file{'s' if len(bad) != 1 else ''}; "
              "nothing is put in force until they are fixed", file=sys.stderr)
        return EXIT_ERROR
    for w in result.warnings:  # file:line:col: warning: ...
        print(str(w), file=sys.stderr)
    return EXIT_OK


async def cmd_diff(args: argparse.Namespace) -> int:
    from channelmgr.mapping.diff import (
        diff_mappings,
        floor_check,
        format_diff,
        ledger_snapshots,
        today_in,
    )
    from channelmgr.mapping.loader import check_texts, read_texts, registry_capabilities
    from channelmgr.runtime import Runtime
    from channelmgr.yamlfile import YamlFileError

    edited, problems = read_texts([Path(p) for p in args.paths])
    if problems:
        raise YamlFileError(problems)
    if not edited:
        print(f"channelmgr: no mapping files (*.yaml) in {', '.join(args.paths)}", file=sys.stderr)
        return EXIT_ERROR
    # sync_mappings=False: opening the ledger must not put the edited folder in force
    rt = await Runtime.open(args.config, sync_mappings=False)
    try:
        version = await rt.ledger.mapping_in_force()
        if version:
            base = {name: text for name, text in version["files"].items()}
            where = f"the version in force since {version['at']:%Y-%m-%d %H:%M} ({version['fingerprint']})"
        else:
            texts, problems = read_texts([rt.config.resolve(rt.config.mappings_dir)])
            if problems:
                raise YamlFileError(problems)
            base = {Path(p).name: t for p, t in texts.items()}
            where = "the mappings folder (nothing has been put in force yet)"
        old_check = check_texts(base)
        if not old_check.ok:
            print(f"channelmgr: {where} does not load any more, so there is nothing to compare with:",
                  file=sys.stderr)
            for p in old_check.problems:
                print(f"  {p}", file=sys.stderr)
            return EXIT_ERROR
        old = old_check.mapping_set()
        edited_names = {Path(p).name for p in edited}
        new_texts = {name: text for name, text in base.items() if name not in edited_names}
        new_texts.update(edited)  # the edited files keep their own path, so problems point at them
        new_check = check_texts(new_texts)
        new = new_check.mapping_set()
        diff = await diff_mappings(old, new, ledger_snapshots(rt.ledger), today_in, args.days,
                                   registry_capabilities)
        # the edit's price rules through the ledger's prices, as the daemon checks them
        floors = await floor_check(old, new, ledger_snapshots(rt.ledger), today_in, args.days,
                                   registry_capabilities)
    finally:
        await rt.close()
    warnings = sorted([w for w in new_check.warnings if w.file in edited] + floors.warnings,
                      key=lambda p: (p.file, p.line, p.col))
    warnings = list(dict.fromkeys(warnings))
    if args.json:
        out = diff.to_json()
        out["compared_with"] = where
        out["problems"] = [str(p) for p in floors.problems]
        out["warnings"] = [str(w) for w in warnings]
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return EXIT_OK if floors.ok else EXIT_ERROR
    print(f"comparing {', '.join(sorted(edited))} with {where}")
    print(format_diff(diff, samples=args.samples))
    for p in sorted(floors.problems + warnings, key=lambda p: (p.file, p.line, p.col)):
        print(str(p), file=sys.stderr)
    if not floors.ok:
        n = len(floors.problems)
        print(f"{n} problem{'s' if n != 1 else ''} with the ledger's prices: the daemon would refuse this edit "
              "and keep the version in force", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK
