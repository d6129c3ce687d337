"""The OpenAPI document, generated from the routes and the schemas that
validate them (nothing about a route is written twice).

A responder declares its contract with `@operation(...)`; `Routes` remembers
what is mounted where, and `document()` walks both.
"""
import json
import re

from pydantic import BaseModel, TypeAdapter

from gateway import idempotency
from gateway.schemas.base import Error, ListQuery

METHODS = ("get", "post", "put", "patch", "delete")
REF = "#/components/schemas/{model}"

ERROR_RESPONSES = {
    "400": "Malformed request (bad JSON, query parameter or Idempotency-Key)",
    "401": "Missing or wrong API key",
    "403": "Refused: a webhook signature or verify token that does not match",
    "404": "Unknown id or route",
    "409": "Uniqueness conflict",
    "413": "Body over 1 MiB",
    "414": "Request line (path and query) over 8 KiB",
    "415": "Body is not JSON",
    "422": "Well-formed JSON that fails validation, or an Idempotency-Key reused with another "
           "request",
    "502": "An upstream API (Meta's Graph API) refused or failed; its message in description",
    "503": "A service, the broker or the database is unavailable (see Retry-After)",
}


def operation(summary, body=None, query=None, response=None, many=False, status=200,
              public=False, errors=(), tags=(), content_type="application/json", description=None,
              other_responses=None, idempotency_key=True):
    """Declare what a responder accepts and answers (read by `document()`).
    `other_responses` maps a status code to (description, model) where that
    answer is not the Error shape (another success, or a 503 with a body of
    its own). `idempotency_key=False`: a write that takes no Idempotency-Key
    (gateway/idempotency.py)."""
    def decorate(responder):
        responder.__openapi__ = dict(summary=summary, body=body, query=query, response=response,
                                     many=many, status=status, public=public, errors=errors,
                                     tags=tags, content_type=content_type, description=description,
                                     other_responses=other_responses or {},
                                     idempotency_key=idempotency_key)
        return responder
    return decorate


class Routes:
    def __init__(self, app):
        self.app = app
        self.mounted = []

    def add(self, path, resource):
        self.app.add_route(path, resource)
        self.mounted.append((path, resource))


def _schema(model, components, mode):
    schema = TypeAdapter(model).json_schema(ref_template=REF, mode=mode, by_alias=True)
    for name, definition in schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    if isinstance(model, type) and issubclass(model, BaseModel):
        components.setdefault(model.__name__, schema)
        return {"$ref": REF.format(model=model.__name__)}
    return schema


def _query_parameters(model):
    schema = model.model_json_schema(by_alias=True, ref_template=REF)
    params = []
    for name, prop in schema.get("properties", {}).items():
        description = prop.pop("description", None)
        prop.pop("title", None)
        param = {"name": name, "in": "query", "required": name in schema.get("required", ()),
                 "schema": prop}
        if description:
            param["description"] = description
        params.append(param)
    return params


def _operation(spec, path, components):
    op = {"summary": spec["summary"], "operationId": None, "responses": {}}
    if spec["description"]:
        op["description"] = spec["description"]
    if spec["tags"]:
        op["tags"] = list(spec["tags"])
    # Ids are UUIDs; any other text is simply an unknown id (404).
    params = [{"name": name, "in": "path", "required": True,
               "schema": {"type": "string", "format": "uuid"}}
              for name in _path_names(path)]
    if spec["query"] is not None:
        params.extend(_query_parameters(spec["query"]))
    if params:
        op["parameters"] = params
    if spec["body"] is not None:
        op["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": _schema(spec["body"], components, "validation")}}}
    ok = {"description": spec["summary"]}
    if spec["response"] is not None:
        schema = _schema(spec["response"], components, "serialization")
        if spec["many"]:
            schema = {"type": "array", "items": schema}
        paged = isinstance(spec["query"], type) and issubclass(spec["query"], ListQuery)
        if spec["many"] and paged:      # http.page() sets these; a chart is a bare array
            ok["headers"] = {
                "X-Total-Count": {"schema": {"type": "integer"}, "description": "rows in all",
                                  "required": True},
                "Link": {"schema": {"type": "string"}, "description": 'next page, rel="next"'}}
        ok["content"] = {spec["content_type"]: {"schema": schema}}
    if spec["status"] == 201:
        ok.setdefault("headers", {})["Location"] = {"schema": {"type": "string"}, "required": True}
    op["responses"][str(spec["status"])] = ok
    error_ref = {"application/json": {"schema": _schema(Error, components, "serialization")}}
    codes = set(spec["errors"]) | {"503"} | ({"401"} if not spec["public"] else set())
    if spec["body"] is not None:
        codes |= {"400", "413", "415", "422"}
    if spec["query"] is not None:
        codes.add("400")
    if params:
        codes.add("414")
    for code in sorted(codes - set(spec["other_responses"])):
        op["responses"][code] = {"description": ERROR_RESPONSES[code], "content": error_ref}
    for code, (description, model) in spec["other_responses"].items():
        op["responses"][code] = {"description": description, "content": {
            spec["content_type"]: {"schema": _schema(model, components, "serialization")}}}
    op["responses"] = dict(sorted(op["responses"].items()))
    if spec["public"]:
        op["security"] = []
    return op


def _document_idempotency_key(op, components):
    """The Idempotency-Key header of a write, and its 400 (a malformed key)
    and 422 (a key reused with another request)."""
    op.setdefault("parameters", []).append(dict(idempotency.PARAMETER))
    error_ref = {"application/json": {"schema": _schema(Error, components, "serialization")}}
    for code in ("400", "422"):
        op["responses"].setdefault(code, {"description": ERROR_RESPONSES[code],
                                          "content": error_ref})
    op["responses"] = dict(sorted(op["responses"].items()))


def _path_names(path):
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


def document(routes, title="Sociovia CRM API", version="1.0.0"):
    components = {}
    paths = {}
    for path, resource in routes.mounted:
        item = {}
        for method in METHODS:
            responder = getattr(resource, "on_" + method, None)
            spec = getattr(responder, "__openapi__", None)
            if spec is None:
                continue
            op = _operation(spec, path, components)
            if idempotency.takes_key(method, spec):
                _document_idempotency_key(op, components)
            op["operationId"] = "%s%s" % (method, "".join(
                re.sub(r"[^0-9A-Za-z]", "", p.title()) for p in path.split("/")[2:]))
            item[method] = op
        if item:
            paths[path] = item
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version,
                 "description": "HTTP API of the Sociovia CRM backend. Lists are bare JSON arrays "
                                "with paging in X-Total-Count and Link headers."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
        "security": [{"bearer": []}, {"apiKey": []}],
    }


def served_document():
    """The document the gateway serves at /api/openapi.json, as built by the
    app itself (no broker, database or key is touched to build it)."""
    from falcon import testing

    from crm_common.config import Settings
    from gateway.app import create_app

    app = create_app(Settings.from_env(), client=None, keys=None, streams=object())
    result = testing.TestClient(app).simulate_get("/api/openapi.json")
    if result.status_code != 200:
        raise RuntimeError("GET /api/openapi.json answered %s" % result.status)
    return result.json


def dumps(doc):
    """The committed file's form: sorted keys, two-space indent, a final newline."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv=None):
    """`python -m gateway.openapi PATH`: write the served document to PATH
    (`make openapi` writes docs/openapi.json)."""
    import sys

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m gateway.openapi PATH", file=sys.stderr)
        return 2
    with open(argv[0], "w", encoding="utf-8") as f:
        f.write(dumps(served_document()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
