"""The OpenAPI 3.1 document of /api/v1/, made from the route table and its pydantic models."""

from __future__ import annotations

import copy
import re
from typing import Any

from pydantic import BaseModel

from channelmgr import __version__
from channelmgr.web.models import Error

REF = "#/components/schemas/{model}"
STATUS_TEXT = {400: "bad input", 401: "not logged in", 403: "not allowed (role, or CSRF header missing)",
               404: "not found", 409: "contradicts the current state", 413: "body too large",
               429: "too many failed logins", 500: "the daemon failed"}


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    s = copy.deepcopy(model.model_json_schema(ref_template=REF, by_alias=True))
    for name, sub in s.pop("$defs", {}).items():
        components.setdefault(name, sub)
    components.setdefault(model.__name__, s)
    return s


def _parameters(model: type[BaseModel] | None, where: str, components: dict[str, Any]) -> list[dict[str, Any]]:
    if model is None:
        return []
    s = _schema(model, components)
    required = set(s.get("required", ()))
    out = []
    for name, prop in s.get("properties", {}).items():
        prop = dict(prop)
        desc = prop.pop("description", None)
        prop.pop("title", None)
        p = {"name": name, "in": where, "required": where == "path" or name in required, "schema": prop}
        if desc:
            p["description"] = desc
        out.append(p)
    return out


def _responses(r, components: dict[str, Any]) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "done"}
    if r.response_model is not None:
        _schema(r.response_model, components)
        ok["content"] = {"application/json": {"schema": {"$ref": REF.format(model=r.response_model.__name__)}}}
    elif r.path.endswith("openapi.json"):
        ok["content"] = {"application/json": {"schema": {"type": "object"}}}
    out: dict[str, Any] = {"200": ok}
    codes = set(r.errors) | {500}
    if r.role is not None:
        codes |= {401, 403}
    if r.body_model is not None:
        codes |= {400, 413}
    if r.query_model is not None or r.path_model is not None:
        codes |= {400}
    if r.path_model is not None:
        codes |= {404}
    for code in sorted(codes):
        out[str(code)] = {"description": STATUS_TEXT.get(code, "error"),
                          "content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}}}
    return out


def _operation_id(method: str, path: str) -> str:
    words = re.sub(r"[{}]", "", path.removeprefix("/api/v1/")).replace("-", "_").replace(".", "_").split("/")
    return method.lower() + "_" + "_".join(w for w in words if w)


_CACHE: dict[tuple[int, ...], dict[str, Any]] = {}


def document(routes) -> dict[str, Any]:
    key = tuple(id(r) for r in routes)
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = _document(routes)
    return copy.deepcopy(_CACHE[key])


def _document(routes) -> dict[str, Any]:
    components: dict[str, Any] = {}
    _schema(Error, components)
    paths: dict[str, Any] = {}
    for r in routes:
        op: dict[str, Any] = {"operationId": _operation_id(r.method, r.path), "summary": r.summary,
                              "parameters": _parameters(r.path_model, "path", components)
                              + _parameters(r.query_model, "query", components),
                              "responses": _responses(r, components)}
        if r.role is None:
            op["security"] = []
        else:
            op["x-required-role"] = r.role
        if r.body_model is not None:
            _schema(r.body_model, components)
            op["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": REF.format(model=r.body_model.__name__)}}}}
        if not op["parameters"]:
            del op["parameters"]
        paths.setdefault(r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "channelmgr operator API", "version": __version__,
                 "description": "Status, sync log, conflicts, bookings, calendar, mappings and ARI of the "
                                "channel manager. Log in (POST /api/v1/login) for a session cookie and send "
                                "the csrf_token back in X-CSRF-Token on changes, or send an API token "
                                "(`channelmgr users token NAME`) as Authorization: Bearer."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "session": {"type": "apiKey", "in": "cookie", "name": "channelmgr_session"}}},
        "security": [{"bearer": []}, {"session": []}],
    }
