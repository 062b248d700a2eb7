"""The OpenAPI document, and schemathesis against it on a running daemon: no 500 (issue 11)."""

from __future__ import annotations

import asyncio
import json

import pytest

from channelmgr.web.api import ROUTES
from tests.web.helpers import bearer

pytestmark = pytest.mark.slow


def _refs(node, out: set[str]) -> set[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                out.add(v)
            else:
                _refs(v, out)
    elif isinstance(node, list):
        for v in node:
            _refs(v, out)
    return out


async def _document(r, headers) -> dict:
    async with r.http.get(r.d.base_url + "/api/v1/openapi.json") as resp:
        assert resp.status == 401  # like everything else, behind the login
    async with r.http.get(r.d.base_url + "/api/v1/openapi.json", headers=headers) as resp:
        assert resp.status == 200
        return json.loads(await resp.text())


async def test_the_openapi_document_has_every_route_and_resolves(run_sqlite):
    r = run_sqlite
    doc = await _document(r, await bearer(r.d, "viewer"))
    assert doc["openapi"].startswith("3.")
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    assert documented == {(rt.method, rt.path) for rt in ROUTES}
    served = {(res.method, res.resource.canonical) for res in r.d.http.app.router.routes()
              if res.resource is not None and res.resource.canonical.startswith("/api/v1/")}
    assert documented == served
    for ref in _refs(doc, set()):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in doc["components"]["schemas"], ref
    ari = doc["paths"]["/api/v1/ari"]["put"]
    assert ari["x-required-role"] == "revenue" and "403" in ari["responses"]
    assert doc["paths"]["/api/v1/login"]["post"]["security"] == []
    params = {p["name"] for p in doc["paths"]["/api/v1/bookings"]["get"]["parameters"]}
    assert params >= {"ota_id", "confirmation", "arrival", "status", "channel", "before_id", "limit", "offset"}


def _fuzz(doc: dict, base_url: str, headers: dict, max_examples: int) -> list[str]:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_dict(doc)
    problems: list[str] = []
    calls = [0]
    statuses: dict[int, int] = {}

    def fuzz(op, mode, strategy=None):
        label = f"{op.label} {mode.value if mode else 'examples'}"

        @settings(max_examples=max_examples, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy if strategy is not None else op.as_strategy(generation_mode=mode))
        def check(case):
            resp = case.call(base_url=base_url, headers=headers, timeout=30)
            calls[0] += 1
            statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
            if resp.status_code >= 500:
                problems.append(f"{label}: {resp.status_code} for path={case.path_parameters} "
                                f"query={case.query} body={case.body!r:.300}: {resp.text[:300]}")

        try:
            check()
        except Exception as e:  # hypothesis could generate nothing, or a call itself blew up
            if "Unsatisfiable" not in type(e).__name__:
                problems.append(f"{label}: {type(e).__name__}: {e}"[:500])

    from hypothesis import strategies as st

    for result in schema.get_all_operations():
        op = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(op, mode)
        examples = op.get_strategies_from_examples()
        if examples:  # the documented examples (a real property and room) reach the ledger's own checks
            fuzz(op, None, st.one_of(examples))
    assert calls[0] > 100, calls
    # the fuzzing ran logged in: most answers are the API's own, not 401
    assert sum(n for code, n in statuses.items() if 200 <= code < 300) > 20, statuses
    assert statuses.get(401, 0) < calls[0] / 4, statuses
    return problems


async def test_schemathesis_finds_no_500(run):
    r = run
    headers = await bearer(r.d, "admin")
    doc = await _document(r, headers)
    problems = await asyncio.to_thread(_fuzz, doc, r.d.base_url, headers, 20)
    assert problems == []
    async with r.http.get(r.d.base_url + "/health") as resp:
        assert resp.status == 200
