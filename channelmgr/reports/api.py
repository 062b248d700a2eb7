"""The reports' routes of the operator API (/api/v1/reports/...), in channelmgr.web.api's table
and style: the same parameters as `channelmgr report` (``format=csv|xlsx`` for a download)."""

from __future__ import annotations

import io

from aiohttp import web

from channelmgr.reports import render
from channelmgr.reports.figures import Money, ReportError, ReportQuery, compute
from channelmgr.web import models as M
from channelmgr.web.api import Ctx, _BadInput, route


async def run_report(daemon, kind: str, q: ReportQuery) -> dict:
    """A report of the running daemon's ledger, with its mapping's commission and exchange
    rates: what the API and the console's Reports page both show (raises ReportError)."""
    pm = daemon.mappings.get(q.property) if daemon.mappings else None
    return await daemon.rt.db.read(lambda conn: compute(conn, kind, q, Money.from_mapping(pm)))


async def report_for(c: Ctx, kind: str, qin: M.ReportQueryIn) -> dict:
    q = ReportQuery(qin.property, qin.from_, qin.to, qin.by, qin.group, qin.basis)
    try:
        return await run_report(c.daemon, kind, q)
    except ReportError as e:
        raise _BadInput(str(e), {"to": "to", "property": "property"}.get(e.field or "", e.field),
                        404 if e.field == "property" else 400) from None


@route("GET", "/reports/{report}", "A report (summary, channels, pace, lead-time, cancellations) of one property",
       path_model=M.ReportPath, query_model=M.ReportQueryIn, response_model=M.ReportOut, errors=(400, 404),
       raw=True)
async def get_report(c: Ctx) -> web.StreamResponse:
    kind = c.path.report
    report = await report_for(c, kind, c.query)
    name = f"{kind}-{report['property']}-{report['from']}-{report['to']}"
    if c.query.format == "csv":
        return web.Response(text=render.to_csv(report), content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    if c.query.format == "xlsx":
        buf = io.BytesIO()
        render.to_xlsx(report, buf)
        return web.Response(body=buf.getvalue(),
                            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                            headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'})
    from channelmgr.web.api import _dumps

    return web.json_response(M.ReportOut.model_validate(report).model_dump(mode="json", by_alias=True),
                             dumps=_dumps)
