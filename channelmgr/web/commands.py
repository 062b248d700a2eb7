"""`channelmgr users add|list|disable|token` and `channelmgr conflicts show|resolve` (issue 11)."""

from __future__ import annotations

import argparse
import json
import sys

from channelmgr.cli import CliError, _actor
from channelmgr.web.accounts import ROLES


def register(sub, common) -> None:
    u = sub.add_parser("users", parents=[common], help="people and programs that may use the API and console",
                       description="Accounts of the operator API and console. Roles, each allowed what the ones "
                                   "before it are: viewer (reads; guest data masked), operator (resolves "
                                   "conflicts, sees guest data), revenue (sets rooms, prices and restrictions), "
                                   "admin (users).")
    u.set_defaults(help_parser=u)
    us = u.add_subparsers(dest="users_command", metavar="ACTION")
    a = us.add_parser("add", parents=[common], help="add a user",
                      description="Add a user. On a terminal you are asked for the password (empty: one is "
                                  "made up); otherwise one is made up. A made-up password is printed once.")
    a.add_argument("name")
    a.add_argument("--role", required=True, choices=ROLES)
    a.set_defaults(func=cmd_users_add)
    ls = us.add_parser("list", parents=[common], help="list users")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_users_list)
    d = us.add_parser("disable", parents=[common], help="disable a user: its sessions end, its tokens stop")
    d.add_argument("name")
    d.set_defaults(func=cmd_users_disable)
    t = us.add_parser("token", parents=[common], help="make an API token for a user (the PMS); shown once",
                      description="Make an API token for NAME, to send as `Authorization: Bearer <token>`. "
                                  "It is printed once; only its digest is kept.")
    t.add_argument("name")
    t.set_defaults(func=cmd_users_token)

    # `channelmgr conflicts` (daemon_commands) lists; show and resolve are its actions
    cf = sub.choices["conflicts"]
    cfs = cf.add_subparsers(dest="conflicts_command", metavar="ACTION")
    sh = cfs.add_parser("show", parents=[common], help="one conflict in full")
    sh.add_argument("id", type=int)
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=cmd_conflicts_show)
    rs = cfs.add_parser("resolve", parents=[common], help="mark a conflict resolved, with a note",
                        description="Mark a conflict resolved with a note saying what was done; who and when "
                                    "are recorded on it and in the journal.")
    rs.add_argument("id", type=int)
    rs.add_argument("--note", required=True, help="what was done about it")
    rs.set_defaults(func=cmd_conflicts_resolve)


async def _db(args):
    from channelmgr.daemon_commands import _db

    return await _db(args)


async def cmd_users_add(args: argparse.Namespace) -> int:
    from channelmgr.web import accounts

    password = None
    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass(f"password for {args.name} (empty: make one up): ")
        if password and getpass.getpass("again: ") != password:
            raise CliError("the two passwords differ; nothing was changed")
    made_up = not password
    password = password or accounts.generate_password()
    _, db = await _db(args)
    try:
        await accounts.add_user(db, args.name, args.role, password, actor=_actor())
    finally:
        await db.dispose()
    print(f"added {args.name} ({args.role})")
    if made_up:
        print(f"password: {password}")
        print("(shown only now; log in with POST /api/v1/login)")
    return 0


async def cmd_users_list(args: argparse.Namespace) -> int:
    from channelmgr.web import accounts

    _, db = await _db(args)
    try:
        rows = await accounts.list_users(db)
    finally:
        await db.dispose()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print("no users yet: `channelmgr users add NAME --role viewer|operator|revenue|admin`")
    for r in rows:
        flags = ", ".join(f for f, on in (("disabled", r["disabled"]), ("has a token", r["has_token"])) if on)
        print(f"{r['name']:<24} {r['role']:<9} since {r['created_at'][:10]}" + (f"  ({flags})" if flags else ""))
    return 0


async def cmd_users_disable(args: argparse.Namespace) -> int:
    from channelmgr.web import accounts

    _, db = await _db(args)
    try:
        await accounts.disable_user(db, args.name, actor=_actor())
    finally:
        await db.dispose()
    print(f"disabled {args.name}: its sessions ended, its API tokens no longer work")
    return 0


async def cmd_users_token(args: argparse.Namespace) -> int:
    from channelmgr.web import accounts

    _, db = await _db(args)
    try:
        token = await accounts.issue_token(db, args.name, actor=_actor())
    finally:
        await db.dispose()
    print(token)
    print(f"(an API token for {args.name}, shown only now: send it as `Authorization: Bearer <token>`)",
          file=sys.stderr)
    return 0


def _print_conflict(c: dict) -> None:
    print(f"conflict #{c['id']}  {c['kind']}  {c['status']}")
    print(f"  at        {c['at']}")
    print(f"  property  {c['property'] or '-'}   channel {c['channel'] or '-'}"
          + (f"   booking #{c['booking_id']}" if c["booking_id"] else "")
          + (f"   inbox #{c['inbox_id']}" if c["inbox_id"] else ""))
    print(f"  what      {c['summary']}")
    if c["detail"]:
        print(f"  detail    {json.dumps(c['detail'], ensure_ascii=False, default=str)}")
    if c["status"] != "open":
        print(f"  resolved  {c['resolved_at']} by {c['resolved_by'] or '?'}: {c['resolution']}")


async def cmd_conflicts_show(args: argparse.Namespace) -> int:
    from channelmgr.web import queries

    _, db = await _db(args)
    try:
        c = await queries.conflict(db, args.id)
    finally:
        await db.dispose()
    if args.json:
        print(json.dumps(c, ensure_ascii=False, indent=2, default=str))
    else:
        _print_conflict(c)
    return 0


async def cmd_conflicts_resolve(args: argparse.Namespace) -> int:
    from channelmgr.web import queries

    actor = _actor()
    _, db = await _db(args)
    try:
        c = await queries.resolve_conflict(db, args.id, args.note, actor=actor, resolved_by=actor)
    finally:
        await db.dispose()
    print(f"conflict #{c['id']} resolved by {c['resolved_by']} at {c['resolved_at']}: {c['resolution']}")
    return 0
