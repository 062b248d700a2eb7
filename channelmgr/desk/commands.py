"""`channelmgr bookings add|modify|cancel|list|show`, `requests`, `audit`, `overbooking check`,
and the desk's ways of settling a conflict (`conflicts resolve ID --upgrade-to|--relocate|--cancel`).

Who is at the command line: ``--as USER`` names an account of `channelmgr users` (it must exist,
be enabled and, to reveal guest data or override, have the operator role or above); without
it the operating-system user is recorded as ``cli:<login>`` (like every other CLI change) and
revealing needs ``--as``.
"""

from __future__ import annotations

import argparse
import json

from channelmgr.cli import CliError, _actor, _date, _positive


def register(sub, common) -> None:
    who = argparse.ArgumentParser(add_help=False)
    who.add_argument("--as", dest="as_user", metavar="USER",
                     help="the account (channelmgr users) doing this; needed to reveal guest data or override")

    b = sub.add_parser("bookings", parents=[common], help="every booking of every source; direct bookings",
                       description="The reservations desk's one list of bookings (OTAs and the hotel's own "
                                   "sources: website, phone, walk-in, agency, corporate), and direct bookings "
                                   "entered here, which take rooms like an OTA booking and are sent to every OTA.")
    b.set_defaults(help_parser=b)
    bs = b.add_subparsers(dest="bookings_command", metavar="ACTION")

    a = bs.add_parser("add", parents=[common, who], help="enter a direct booking",
                      description="Enter a direct booking. With no free room it is refused with the reason, "
                                  "unless --override (operator role, recorded in the journal). The price is the "
                                  "ledger's rate for those nights unless --amount is given.")
    a.add_argument("--property", required=True)
    a.add_argument("--room-type", required=True)
    a.add_argument("--rate-plan", required=True)
    a.add_argument("--arrival", required=True, type=_date, metavar="YYYY-MM-DD")
    a.add_argument("--departure", required=True, type=_date, metavar="YYYY-MM-DD")
    a.add_argument("--rooms", type=_positive, default=1)
    a.add_argument("--guest-name", required=True)
    a.add_argument("--phone", required=True)
    a.add_argument("--email")
    a.add_argument("--request", help="the guest's special requests, in their words")
    a.add_argument("--source", default="phone", help="website, phone, walk_in, agency, corporate (default phone)")
    a.add_argument("--amount", metavar="1288.00", help="the whole stay's price, instead of the ledger's rates")
    a.add_argument("--override", action="store_true", help="take it even with no free room (operator)")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_add)

    mo = bs.add_parser("modify", parents=[common, who], help="change a direct booking",
                       description="Change a direct booking (an OTA booking is changed on its OTA). Fields not "
                                   "given stay as they are; --request \"\" withdraws the request.")
    mo.add_argument("ref", help="our confirmation number or the booking's id")
    mo.add_argument("--room-type")
    mo.add_argument("--rate-plan")
    mo.add_argument("--arrival", type=_date, metavar="YYYY-MM-DD")
    mo.add_argument("--departure", type=_date, metavar="YYYY-MM-DD")
    mo.add_argument("--rooms", type=_positive)
    mo.add_argument("--guest-name")
    mo.add_argument("--phone")
    mo.add_argument("--email")
    mo.add_argument("--request")
    mo.add_argument("--amount", metavar="1288.00")
    mo.add_argument("--override", action="store_true")
    mo.add_argument("--json", action="store_true")
    mo.set_defaults(func=cmd_modify)

    ca = bs.add_parser("cancel", parents=[common, who], help="cancel a direct booking",
                       description="Cancel a direct booking: its rooms are freed and every OTA is told.")
    ca.add_argument("ref")
    ca.add_argument("--reason", required=True)
    ca.add_argument("--json", action="store_true")
    ca.set_defaults(func=cmd_cancel)

    ls = bs.add_parser("list", parents=[common], help="bookings of every source, newest first",
                       description="Bookings of every source, newest first; guest data masked.")
    ls.add_argument("--property")
    ls.add_argument("--source", help="an OTA (booking, ctrip, fliggy, meituan) or a direct source (phone, ...)")
    ls.add_argument("--status", choices=["confirmed", "cancelled", "pending"])
    ls.add_argument("--arrival-from", type=_date, metavar="YYYY-MM-DD")
    ls.add_argument("--arrival-to", type=_date, metavar="YYYY-MM-DD")
    ls.add_argument("--search", metavar="TEXT", help="our confirmation number, an OTA id, a guest's name or phone")
    ls.add_argument("--limit", type=_positive, default=50)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)

    sh = bs.add_parser("show", parents=[common, who], help="one booking in full",
                       description="One booking: revisions, nights, money, channels told, requests, conflicts. "
                                   "Guest data is masked; --reveal (operator, with --as and --why) shows it and "
                                   "writes an access-audit row (`channelmgr audit`).")
    sh.add_argument("ref", help="our confirmation number (CM...) or the OTA's booking id")
    sh.add_argument("--reveal", action="store_true")
    sh.add_argument("--why", help="why guest data is revealed (audited)")
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=cmd_show)

    au = sub.add_parser("audit", parents=[common], help="who saw guest data in clear, when and why",
                        description="The access audit: every reveal of a booking's guest data, newest first.")
    au.add_argument("--booking", metavar="REF")
    au.add_argument("--limit", type=_positive, default=50)
    au.add_argument("--json", action="store_true")
    au.set_defaults(func=cmd_audit)

    rq = sub.add_parser("requests", parents=[common], help="guests' special requests and their clocks",
                        description="Special requests from every booking, open ones by how soon they are due "
                                    "(2 hours from the booking's arrival, desk.request_answer_hours).")
    rq.add_argument("--overdue", action="store_true", help="only open requests past their time")
    rq.add_argument("--all", action="store_true", help="also answered, done and withdrawn ones")
    rq.add_argument("--property")
    rq.add_argument("--json", action="store_true")
    rq.set_defaults(func=cmd_requests)
    rqs = rq.add_subparsers(dest="requests_command", metavar="ACTION")
    an = rqs.add_parser("answer", parents=[common, who], help="say what was done about a request (stops its clock)")
    an.add_argument("id", type=int)
    an.add_argument("--note", required=True)
    an.set_defaults(func=cmd_request_answer)
    dn = rqs.add_parser("done", parents=[common, who], help="mark a request done")
    dn.add_argument("id", type=int)
    dn.set_defaults(func=cmd_request_done)

    ob = sub.add_parser("overbooking", parents=[common], help="overbooked nights ahead",
                        description="Overbooked nights (sold past physical) per property.")
    ob.set_defaults(help_parser=ob)
    obs = ob.add_subparsers(dest="overbooking_command", metavar="ACTION")
    ck = obs.add_parser("check", parents=[common], help="the next days' overbooked nights (the daily check, now)")
    ck.add_argument("--days", type=_positive, default=None, help="how far ahead (default 7)")
    ck.add_argument("--json", action="store_true")
    ck.set_defaults(func=cmd_overbooking_check)

    # `conflicts resolve ID --upgrade-to DK | --relocate "Partner" | --cancel` (web.commands adds resolve)
    cf = sub.choices["conflicts"]
    sp = next(act for act in cf._actions if isinstance(act, argparse._SubParsersAction))
    rs = sp.choices["resolve"]
    for act in rs._actions:
        if act.dest == "note":
            act.required = False
            act.help = "what was done about it (required unless --upgrade-to, --relocate or --cancel)"
    rs.add_argument("--upgrade-to", metavar="ROOM_TYPE",
                    help="an overbooking: move the booking's nights to this room type (one ledger transaction)")
    rs.add_argument("--relocate", metavar="PARTNER", help="an overbooking: the guest goes to this partner hotel")
    rs.add_argument("--cancel", action="store_true", help="an overbooking: settled by cancelling the booking")
    rs.add_argument("--as", dest="as_user", metavar="USER")
    plain = rs.get_default("func")
    rs.set_defaults(func=lambda args: cmd_conflicts_resolve(args, plain))


# ---- helpers -----------------------------------------------------------------------------
async def _open(args):
    from channelmgr.desk.service import Desk
    from channelmgr.runtime import Runtime

    rt = await Runtime.open(args.config)
    rt.warn_mapping_errors()
    return rt, Desk(rt.ledger, rt.config.desk, lambda: rt.mappings)


async def _who(rt, args, need: str | None = None) -> str:
    """The actor recorded: ``--as`` names an account (checked), else the OS user."""
    name = getattr(args, "as_user", None)
    if not name:
        if need:
            raise CliError(f"this needs the {need} role: say who you are with --as USER (an account of "
                           "`channelmgr users`)")
        return _actor()
    from sqlalchemy import select

    from channelmgr.ledger import models as m
    from channelmgr.web.accounts import ROLES

    async def q(conn):
        return (await conn.execute(select(m.users.c.role, m.users.c.disabled).where(m.users.c.name == name))).first()

    u = await rt.db.read(q)
    if u is None or u.disabled:
        raise CliError(f"there is no enabled user {name!r} (`channelmgr users list`)")
    if need and ROLES.index(u.role) < ROLES.index(need):
        raise CliError(f"{name} has the {u.role} role; this needs {need} or above")
    return f"user:{name}"


async def _minor(rt, prop: str, text: str | None) -> int | None:
    if text is None:
        return None
    from channelmgr.cli import _property_currency
    from channelmgr.money import to_minor

    return to_minor(text, await _property_currency(rt, prop))


def _money(minor, currency) -> str:
    if minor is None:
        return "-"
    from channelmgr.money import format_minor

    return f"{format_minor(minor, currency or 'CNY')} {currency or ''}".strip()


def _print_result(r: dict, what: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps(r, ensure_ascii=False, indent=2))
        return
    extra = " (overbooked: taken past the free rooms)" if r.get("overbooked") else ""
    print(f"{what} {r['confirmation']} ({r['ota_booking_id']}): {r['status']}, "
          f"{_money(r.get('amount_minor'), r.get('currency'))}; {r['outbox_rows']} push(es) queued to the OTAs{extra}")


# ---- commands -------------------------------------------------------------------------
async def cmd_add(args) -> int:
    from channelmgr.desk.bookings import DirectBooking

    rt, desk = await _open(args)
    try:
        actor = await _who(rt, args, need="operator" if args.override else None)
        d = DirectBooking(property=args.property, room_type=args.room_type, rate_plan=args.rate_plan,
                          arrival=args.arrival, departure=args.departure, rooms=args.rooms,
                          guest_name=args.guest_name, phone=args.phone, email=args.email, request=args.request,
                          source=args.source, amount_minor=await _minor(rt, args.property, args.amount),
                          override=args.override)
        r = await desk.direct.add(d, actor=actor)
        await desk.scan_now(r["id"], "new")
    finally:
        await rt.close()
    _print_result(r, "booked", args.json)
    return 0


async def cmd_modify(args) -> int:
    from channelmgr.desk.bookings import Change

    rt, desk = await _open(args)
    try:
        actor = await _who(rt, args, need="operator" if args.override else None)
        bid = await desk.direct.find(args.ref)
        key = await desk.direct._key(bid)
        c = Change(room_type=args.room_type, rate_plan=args.rate_plan, arrival=args.arrival,
                   departure=args.departure, rooms=args.rooms, guest_name=args.guest_name, phone=args.phone,
                   email=args.email, request=args.request,
                   amount_minor=await _minor(rt, key.property, args.amount), override=args.override)
        r = await desk.direct.modify(bid, c, actor=actor)
        await desk.scan_now(bid, "modify")
    finally:
        await rt.close()
    _print_result(r, "modified", args.json)
    return 0


async def cmd_cancel(args) -> int:
    rt, desk = await _open(args)
    try:
        actor = await _who(rt, args)
        bid = await desk.direct.find(args.ref)
        r = await desk.direct.cancel(bid, args.reason, actor=actor)
        await desk.scan_now(bid, "cancel")
    finally:
        await rt.close()
    _print_result(r, "cancelled", args.json)
    return 0


async def cmd_list(args) -> int:
    rt, desk = await _open(args)
    try:
        rows = await desk.direct.list(property=args.property, source=args.source, status=args.status,
                                      arrival_from=args.arrival_from, arrival_to=args.arrival_to,
                                      search=args.search, limit=args.limit)
    finally:
        await rt.close()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print("no bookings match")
    for r in rows:
        print(f"{r['confirmation'] or '-':<11} {r['channel']:<9} {r['ota_booking_id'][:22]:<22} {r['status']:<9} "
              f"{r['property'] or '-':<9} {r['checkin'] or '-'}..{r['checkout'] or '-'} {r['rooms']:>2} room(s) "
              f"{_money(r['amount_minor'], r['currency']):>14}  {r['guest']['name'] or '-'} {r['guest']['phone'] or ''}"
              + ("  OVERBOOKED" if r["overbooked"] else ""))
    return 0


async def cmd_show(args) -> int:
    rt, desk = await _open(args)
    try:
        actor = await _who(rt, args, need="operator" if args.reveal else None)
        if args.reveal and not (args.why or "").strip():
            raise CliError("say why with --why \"...\": revealing guest data is audited")
        bid = await desk.direct.find(args.ref)
        b = await desk.direct.show(bid, reveal=args.reveal, actor=actor, why=args.why, via="cli")
    finally:
        await rt.close()
    if args.json:
        print(json.dumps(b, ensure_ascii=False, indent=2, default=str))
        return 0
    g = b["guest"]
    print(f"booking {b['confirmation']}  {b['channel']} {b['ota_booking_id']}  {b['status']}"
          + ("  OVERBOOKED" if b["overbooked"] else ""))
    print(f"  property  {b['property']}   stay {b['checkin']}..{b['checkout']}, {b['rooms']} room(s), "
          f"{_money(b['amount_minor'], b['currency'])}")
    print(f"  guest     {g.get('name') or '-'}  {g.get('phone') or '-'}  {g.get('email') or ''}")
    print("  nights    " + ", ".join(f"{n['night']} {n['room_code']}/{n['rate_code'] or '-'} x{n['rooms']} "
                                     f"{_money(n['price_minor'], b['currency'])}" for n in b["nights"]))
    print("  revisions " + ", ".join(f"{v['revision']} {v['action']} ({v['outcome']})" for v in b["revisions"]))
    print("  told      " + (", ".join(f"{c['channel']}: {c['sent']} sent, {c['waiting']} waiting, {c['failed']} failed"
                                      for c in b["channels_told"]) or "-"))
    for r in b["requests"]:
        print(f"  request   #{r['id']} {r['kind']:<13} {r['status']:<9} due {r['due_at'][:16]}  {r['text']}")
    for c in b["conflicts"]:
        print(f"  conflict  #{c['id']} {c['kind']} {c['status']}: {c['summary']}")
    return 0


async def cmd_audit(args) -> int:
    rt, desk = await _open(args)
    try:
        bid = await desk.direct.find(args.booking) if args.booking else None
        rows = await desk.direct.audit(limit=args.limit, booking_id=bid)
    finally:
        await rt.close()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print("nobody has revealed guest data yet")
    for r in rows:
        print(f"{r['at'][:19].replace('T', ' ')}  {r['actor']:<20} {r['confirmation'] or '-':<11} {r['channel']:<8} "
              f"{r['ota_booking_id']:<20} via {r['via']}: {r['why']}")
    return 0


def _left(seconds: int) -> str:
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    return f"{sign}{s // 3600}h{(s % 3600) // 60:02d}m"


async def cmd_requests(args) -> int:
    rt, desk = await _open(args)
    try:
        rows = await desk.requests.list(overdue=args.overdue, status=None if args.all else "open",
                                        property=args.property)
    finally:
        await rt.close()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print("no overdue requests" if args.overdue else "no open requests")
    for r in rows:
        state = "OVERDUE" if r["overdue"] else r["status"]
        print(f"#{r['id']:<5} {r['confirmation'] or '-':<11} {r['channel']:<8} arr {r['arrival'] or '-':<10} "
              f"{r['kind']:<13} {state:<9} {_left(r['seconds_left']) if r['status'] == 'open' else '':>8}  {r['text']}")
    return 0


async def cmd_request_answer(args) -> int:
    rt, desk = await _open(args)
    try:
        r = await desk.requests.answer(args.id, args.note, actor=await _who(rt, args))
    finally:
        await rt.close()
    print(f"request #{r['id']} answered by {r['answered_by']} at {r['answered_at']}: {r['note']}")
    return 0


async def cmd_request_done(args) -> int:
    rt, desk = await _open(args)
    try:
        r = await desk.requests.done(args.id, actor=await _who(rt, args))
    finally:
        await rt.close()
    print(f"request #{r['id']} done by {r['done_by']} at {r['done_at']}")
    return 0


async def cmd_overbooking_check(args) -> int:
    rt, desk = await _open(args)
    try:
        rows = await desk.overbooking.check(args.days)
    finally:
        await rt.close()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    for p in rows:
        if not p["overbooked"]:
            print(f"{p['property']}: no overbooked night {p['from']}..{p['to']}")
        for n in p["overbooked"]:
            print(f"{p['property']}: {n['room_type']} on {n['night']}: {n['sold']} sold of {n['physical']}, "
                  f"{n['over']} over (see `channelmgr conflicts`)")
    return 0


def cmd_conflicts_resolve(args, plain):
    if not (args.upgrade_to or args.relocate or args.cancel):
        if not args.note:
            raise CliError("say in --note what was done about it (or settle an overbooking with --upgrade-to, "
                           "--relocate or --cancel)")
        return plain(args)
    return _resolve_desk(args)


async def _resolve_desk(args) -> int:
    rt, desk = await _open(args)
    try:
        actor = await _who(rt, args)

        async def direct_cancel(bid, reason):
            await desk.direct.cancel(bid, reason, actor=actor)
            await desk.scan_now(bid, "cancel")

        c = await desk.overbooking.resolve(args.id, actor=actor, upgrade_to=args.upgrade_to, relocate=args.relocate,
                                           cancel=args.cancel, note=args.note, direct_cancel=direct_cancel)
    finally:
        await rt.close()
    print(f"conflict #{c['id']} resolved by {c['resolved_by']} at {c['resolved_at']}: {c['resolution']}")
    return 0
