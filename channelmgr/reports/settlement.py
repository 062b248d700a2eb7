"""OTA statements checked against the ledger (issue 14).

An OTA sends a monthly statement: one line per stay it bills commission on. Imported, each
line is matched to the ledger's booking by (channel, OTA booking id), and reported:

- ``missing_in_ledger``: a line for a booking the ledger never had;
- ``missing_on_statement``: a confirmed booking of the channel arriving in the month (at a
  hotel the statement covers) that the statement does not bill;
- ``cancelled_in_ledger``: a line for a booking the ledger has as cancelled;
- ``amount``: the line's room revenue differs from the booking's amount;
- ``commission``: the line's commission differs from the mapping's rate for the channel, in
  force on the arrival date, applied to the line's amount (rounded half up);
- ``nights``: the line's stay (arrival, departure) differs from the booking's.

The settlement error rate, per month (of arrival) and currency, is the sum of the absolute
differences (the amount of a missing or cancelled booking counts whole) over the
statement's total; over 0.5 % it is flagged. Statements are kept with who imported them and
the file's sha256: the same file imported again changes nothing and reports the same.
"""

from __future__ import annotations

import csv
import hashlib
import io
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import and_, exists, select

from channelmgr.ledger import models as m
from channelmgr.ledger.ledger import _insert
from channelmgr.money import MoneyError, to_minor

FIELDS = ("ota_id", "hotel", "checkin", "checkout", "amount", "commission", "currency")
REQUIRED = ("ota_id", "checkin", "amount", "commission")
FLAG_OVER = Decimal("0.005")
MAX_LINES = 200_000

# what each sandbox exports at GET /_sandbox/statement (adapters/base/sandbox.py STATEMENT_COLUMNS)
DEFAULT_COLUMNS: dict[str, dict[str, str]] = {
    "booking": {"ota_id": "Reservation number", "hotel": "Property ID", "checkin": "Arrival",
                "checkout": "Departure", "amount": "Room revenue", "commission": "Commission", "currency": "Currency"},
    "ctrip": {"ota_id": "订单号", "hotel": "酒店ID", "checkin": "入住日期", "checkout": "离店日期", "amount": "房费",
              "commission": "佣金", "currency": "币种"},
    "fliggy": {"ota_id": "订单编号", "hotel": "酒店编码", "checkin": "入住日期", "checkout": "离店日期",
               "amount": "订单金额", "commission": "佣金", "currency": "币种"},
    "meituan": {"ota_id": "订单号", "hotel": "门店ID", "checkin": "入住日期", "checkout": "离店日期",
                "amount": "房费金额", "commission": "佣金金额", "currency": "币种"},
}


class SettlementError(ValueError):
    """A statement that cannot be read (the file and line say where); nothing was stored."""


def columns_for(channel: str, config: Any = None) -> dict[str, str]:
    cols = dict(DEFAULT_COLUMNS.get(channel, {}))
    override = getattr(getattr(config, "settlement", None), "columns", {}) or {}
    cols.update(override.get(channel, {}))
    return cols


def parse(file_name: str, raw: bytes, cols: dict[str, str], default_currency: str = "CNY") -> list[dict[str, Any]]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SettlementError(f"{file_name}: the file is not UTF-8 text (save the CSV as UTF-8)") from None
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise SettlementError(f"{file_name}: the file is empty") from None
    header = [h.strip() for h in header]
    where: dict[str, int] = {}
    for f in FIELDS:
        name = cols.get(f)
        if name in header:
            where[f] = header.index(name)
        elif f in REQUIRED:
            raise SettlementError(f"{file_name}:1: no column '{name}' ({f}); the header is: {', '.join(header)} "
                                  "(set settlement.columns in config.yaml for another layout)")
    out = []
    for i, row in enumerate(reader, start=2):
        if not any(c.strip() for c in row):
            continue
        if len(out) >= MAX_LINES:
            raise SettlementError(f"{file_name}: more than {MAX_LINES} lines")

        def get(f: str) -> str | None:
            j = where.get(f)
            return row[j].strip() if j is not None and j < len(row) else None

        cur = (get("currency") or default_currency).upper()
        try:
            checkin = date.fromisoformat(get("checkin") or "")
            checkout = date.fromisoformat(get("checkout")) if get("checkout") else None
        except ValueError:
            raise SettlementError(f"{file_name}:{i}: the dates must be like 2026-03-31") from None
        oid = get("ota_id")
        if not oid or len(oid) > 128:
            raise SettlementError(f"{file_name}:{i}: no booking id (or longer than 128 characters)")
        try:
            amount = to_minor(get("amount") or "", cur)
            commission = to_minor(get("commission") or "", cur)
        except MoneyError as e:
            raise SettlementError(f"{file_name}:{i}: {e}") from None
        out.append({"line_no": i, "ota_booking_id": oid, "hotel_code": (get("hotel") or None),
                    "checkin": checkin, "checkout": checkout, "month": f"{checkin.year}-{checkin.month:02d}",
                    "amount_minor": amount, "commission_minor": commission, "currency": cur})
    return out


def _rate_bp(mappings: Any, property_code: str | None, channel: str, arrival: date) -> int:
    pm = mappings.get(property_code) if (mappings and property_code) else None
    rates = sorted((r.from_, r.basis_points) for r in ((pm.file.commission or {}).get(channel, ()) if pm else ()))
    bp = 0
    for d, v in rates:
        if d <= arrival:
            bp = v
    return bp


async def import_statement(rt: Any, channel: str, file_name: str, raw: bytes, *, actor: str) -> dict[str, Any]:
    """Store the statement (once per file content) and return what :func:`check` finds."""
    digest = hashlib.sha256(raw).hexdigest()
    lines = parse(file_name, raw, columns_for(channel, rt.config))

    async def tx(conn):
        prior = (await conn.execute(select(m.statements).where(
            m.statements.c.channel == channel, m.statements.c.content_sha256 == digest))).first()
        if prior is not None:
            return prior.id, True, prior.imported_by
        res = await conn.execute(_insert(conn, m.statements).values(
            channel=channel, file_name=file_name[:255], content_sha256=digest, imported_by=actor[:64],
            imported_at=datetime.now(timezone.utc), lines=len(lines))
            .on_conflict_do_nothing(index_elements=["channel", "content_sha256"]))
        if not res.inserted_primary_key or res.inserted_primary_key[0] is None:  # a concurrent import won
            prior = (await conn.execute(select(m.statements).where(
                m.statements.c.channel == channel, m.statements.c.content_sha256 == digest))).first()
            return prior.id, True, prior.imported_by
        sid = res.inserted_primary_key[0]
        for i in range(0, len(lines), 500):
            await conn.execute(m.statement_lines.insert(), [{"statement_id": sid, **ln} for ln in lines[i:i + 500]])
        return sid, False, actor

    sid, again, who = await rt.db.write(tx)
    result = await check(rt, sid)
    result.update({"file": file_name, "already_imported": again, "imported_by": who, "sha256": digest})
    return result


async def check(rt: Any, statement_id: int) -> dict[str, Any]:
    """Match a stored statement's lines to the ledger's bookings (database joins; only the
    lines and the bookings that differ come back)."""
    sl, b, p = m.statement_lines, m.bookings, m.properties

    async def q(conn):
        st = (await conn.execute(select(m.statements).where(m.statements.c.id == statement_id))).first()
        matched = (await conn.execute(
            select(sl, b.c.id.label("bid"), b.c.status, b.c.checkin.label("b_checkin"),
                   b.c.checkout.label("b_checkout"), b.c.amount_minor.label("b_amount"),
                   b.c.currency.label("b_currency"), p.c.code.label("property"))
            .select_from(sl.outerjoin(b, and_(b.c.channel == st.channel, b.c.ota_booking_id == sl.c.ota_booking_id))
                         .outerjoin(p, p.c.id == b.c.property_id))
            .where(sl.c.statement_id == statement_id).order_by(sl.c.line_no))).all()
        months = sorted({r.month for r in matched})
        hotels = sorted({r.hotel_code for r in matched if r.hotel_code})
        missing = []
        for month in months:
            y, mo = int(month[:4]), int(month[5:])
            first, nxt = date(y, mo, 1), date(y + (mo == 12), mo % 12 + 1, 1)
            stmt = (select(b.c.ota_booking_id, b.c.amount_minor, b.c.currency, b.c.checkin, b.c.hotel_code)
                    .where(b.c.channel == st.channel, b.c.status == "confirmed", b.c.checkin >= first,
                           b.c.checkin < nxt,
                           ~exists().where(sl.c.statement_id == statement_id,
                                           sl.c.ota_booking_id == b.c.ota_booking_id))
                    .order_by(b.c.ota_booking_id))
            if hotels:
                stmt = stmt.where(b.c.hotel_code.in_(hotels))
            missing.extend((month, r) for r in (await conn.execute(stmt)).all())
        return st, matched, missing

    st, matched, missing = await rt.db.read(q)
    diffs: list[dict[str, Any]] = []
    totals: dict[tuple[str, str], dict[str, int]] = {}

    def acc(month: str, cur: str) -> dict[str, int]:
        return totals.setdefault((month, cur), {"total": 0, "diff": 0})

    for r in matched:
        a = acc(r.month, r.currency)
        a["total"] += r.amount_minor
        base = {"ota_booking_id": r.ota_booking_id, "line": r.line_no, "month": r.month, "currency": r.currency}
        if r.bid is None:
            diffs.append({**base, "kind": "missing_in_ledger", "difference_minor": r.amount_minor,
                          "detail": "is on the statement but not in the ledger"})
            a["diff"] += r.amount_minor
            continue
        if r.status == "cancelled":
            diffs.append({**base, "kind": "cancelled_in_ledger", "difference_minor": r.amount_minor,
                          "detail": "is billed but cancelled in the ledger"})
            a["diff"] += r.amount_minor
            continue
        if r.b_amount is not None and (r.b_currency or r.currency) == r.currency and r.b_amount != r.amount_minor:
            d = abs(r.amount_minor - r.b_amount)
            diffs.append({**base, "kind": "amount", "difference_minor": d, "statement_minor": r.amount_minor,
                          "ledger_minor": r.b_amount, "detail": f"amount {r.amount_minor} on the statement, "
                                                               f"{r.b_amount} in the ledger (minor units)"})
            a["diff"] += d
        bp = _rate_bp(rt.mappings, r.property, st.channel, r.checkin)
        expected = int((Decimal(r.amount_minor) * bp / 10000).to_integral_value(ROUND_HALF_UP))
        if expected != r.commission_minor:
            d = abs(r.commission_minor - expected)
            diffs.append({**base, "kind": "commission", "difference_minor": d, "statement_minor": r.commission_minor,
                          "expected_minor": expected, "percent": str(Decimal(bp) / 100),
                          "detail": f"commission {r.commission_minor} on the statement, {expected} at the "
                                    f"mapping's {Decimal(bp) / 100} % (minor units)"})
            a["diff"] += d
        if r.checkout is not None and (r.checkin, r.checkout) != (r.b_checkin, r.b_checkout):
            diffs.append({**base, "kind": "nights", "difference_minor": 0,
                          "detail": f"stay {r.checkin}..{r.checkout} on the statement, {r.b_checkin}..{r.b_checkout} "
                                    "in the ledger"})
    for month, r in missing:
        cur = r.currency or "CNY"
        amount = r.amount_minor or 0
        diffs.append({"ota_booking_id": r.ota_booking_id, "line": None, "month": month, "currency": cur,
                      "kind": "missing_on_statement", "difference_minor": amount,
                      "detail": f"is in the ledger (arriving {r.checkin}) but not on the statement"})
        acc(month, cur)["diff"] += amount
    months = []
    for (month, cur), t in sorted(totals.items()):
        rate = (Decimal(t["diff"]) / Decimal(t["total"])) if t["total"] else (Decimal(1) if t["diff"] else Decimal(0))
        months.append({"month": month, "currency": cur, "statement_total_minor": t["total"],
                       "differences_minor": t["diff"], "error_rate": float(rate), "flagged": rate > FLAG_OVER})
    return {"statement_id": st.id, "channel": st.channel, "lines": st.lines, "months": months,
            "differences": diffs}
