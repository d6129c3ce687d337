"""Bad input on every route with a body or an id, walked from the OpenAPI
document: wrong types, missing required and unknown fields, strings over
their limits, numbers out of range, a 2 MiB body, deeply nested JSON, bytes
that are not UTF-8 or not JSON, a wrong Content-Type, malformed and unknown
ids. Every answer is a 4xx in the one JSON error shape (`errors` naming the
field where a field is at fault), and nothing changes: every paged list
keeps its count and every record the routes touched reads the same."""
import json
import uuid

import pytest

from crm_common.contract import operations, sign

MiB = 1024 * 1024
UNKNOWN_FIELD = "noSuchField"
# An id of the wrong shape is simply an unknown id: 404, like a UUID nobody has.
MALFORMED_IDS = ("not-a-uuid", "1' OR '1'='1", "%E2%98%83", "0" * 300, "-1",
                 "00000000-0000-0000-0000-00000000000g")
WEBHOOK = "/api/webhooks/meta"


def has_body_or_id(op):
    return op.body_schema is not None or op.has_id


# ---- values from a schema ---------------------------------------------------------

def branches(op, schema):
    schema = op.resolve(schema)
    if "anyOf" in schema:
        return [b for part in schema["anyOf"] for b in branches(op, part)]
    return [schema]


def json_types(op, schema):
    types = set()
    for branch in branches(op, schema):
        kind = branch.get("type") or ("object" if "properties" in branch else None)
        types.update(kind if isinstance(kind, list) else [kind])
    if "number" in types:
        types.add("integer")
    return types


def valid_value(op, schema):
    branch = next(b for b in branches(op, schema) if b.get("type") != "null")
    if "enum" in branch:
        return branch["enum"][0]
    kind, fmt = branch.get("type"), branch.get("format")
    if kind == "string":
        return {"email": "bad.input.%s@example.com" % uuid.uuid4().hex[:8],
                "date-time": "2024-03-10T10:00:00Z", "date": "2024-03-10",
                "uuid": str(uuid.uuid4())}.get(fmt, "x" * max(1, branch.get("minLength", 1)))
    return {"integer": branch.get("minimum", 0), "number": float(branch.get("minimum", 0)),
            "boolean": True, "array": [], "object": {}}[kind]


def wrong_value(op, schema):
    """A JSON value of a type the property does not take."""
    allowed = json_types(op, schema)
    for value, kind in ((12345, "integer"), ("text", "string"), (True, "boolean"),
                        ([1], "array"), ({"a": 1}, "object")):
        if kind not in allowed:
            return value
    raise AssertionError("no wrong type for %r" % schema)


def valid_body(op):
    """The smallest body the schema accepts: its required properties."""
    schema = op.body_schema
    return {name: valid_value(op, schema["properties"][name])
            for name in schema.get("required", ())}


def nested(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


# ---- the table ------------------------------------------------------------------------

class Case:
    def __init__(self, label, status, body=None, raw=None, content_type="application/json",
                 field=None, id_value=None, headers=None):
        self.label, self.status, self.field, self.id_value = label, status, field, id_value
        self.raw = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        self.headers = dict(headers or {})
        if self.raw is not None and content_type:
            self.headers["Content-Type"] = content_type

    def __repr__(self):
        return self.label


def body_cases(op):
    schema = op.body_schema
    base = valid_body(op)
    first = next(iter(schema["properties"]))
    yield Case("unknown field", 422, dict(base, **{UNKNOWN_FIELD: 1}), field=UNKNOWN_FIELD)
    for name in schema.get("required", ()):
        yield Case("missing " + name, 422, {k: v for k, v in base.items() if k != name},
                   field=name)
    for name, prop in schema["properties"].items():
        yield Case("%s of a wrong type" % name, 422, dict(base, **{name: wrong_value(op, prop)}),
                   field=name)
        for branch in branches(op, prop):
            if "maxLength" in branch:
                yield Case("%s over %d characters" % (name, branch["maxLength"]), 422,
                           dict(base, **{name: "x" * (branch["maxLength"] + 1)}), field=name)
            if "maximum" in branch:
                yield Case("%s over its maximum" % name, 422,
                           dict(base, **{name: branch["maximum"] + 1}), field=name)
            if "minimum" in branch:
                yield Case("%s under its minimum" % name, 422,
                           dict(base, **{name: branch["minimum"] - 1}), field=name)
    yield from raw_cases(base, first)
    yield Case("a wrong Content-Type", 415, base, content_type="text/plain")
    yield Case("a form body", 415, raw=b"name=x&email=y",
               content_type="application/x-www-form-urlencoded")
    yield Case("no Content-Type", 415, base, content_type=None)


def raw_cases(base, first, headers=None, json_ok=True):
    """Bodies wrong before any field is read (the same for every route)."""
    yield Case("a 2 MiB body", 413, dict(base, **{first: "x" * (2 * MiB)}), headers=headers)
    yield Case("JSON nested 64 deep", 400, dict(base, **{first: nested(64)}), headers=headers)
    yield Case("JSON nested 100000 deep", 400, raw=b"[" * 100_000 + b"]" * 100_000,
               headers=headers)
    yield Case("bytes that are not UTF-8", 400, raw=b'{"%s": "\xff\xfe\xfd"}' % first.encode(),
               headers=headers)
    yield Case("text that is not JSON", 400, raw=b'{"%s": ' % first.encode(), headers=headers)
    yield Case("NaN", 400, raw=b'{"%s": NaN}' % first.encode(), headers=headers)
    if json_ok:
        yield Case("JSON that is not an object", 422, [base], field="body", headers=headers)


def webhook_cases(secret):
    """Meta's webhook checks the signature over the raw bytes before anything
    else: unsigned, every body is a 403 (a body over the limit, a 413);
    signed, bytes that are not a JSON object are a 400."""
    delivery = {"object": "page", "entry": [{"id": "1", "changes": [
        {"field": "leadgen", "value": {"leadgen_id": "1", "page_id": "1"}}]}]}
    yield Case("an unsigned delivery", 403, delivery)
    yield Case("a forged signature", 403, delivery, headers={"X-Hub-Signature-256": "sha256=00"})
    yield Case("an unsigned body of the wrong types", 403, {"object": 1, "entry": "x"})
    yield Case("an unsigned body that is not UTF-8", 403, raw=b"\xff\xfe")
    yield Case("an unsigned 2 MiB body", 413, raw=b" " * (2 * MiB))
    for case in raw_cases({}, "object", json_ok=False):
        case.headers["X-Hub-Signature-256"] = sign(secret, case.raw)
        yield case
    not_object = b"[1, 2]"
    yield Case("a signed body that is not an object", 400, raw=not_object,
               headers={"X-Hub-Signature-256": sign(secret, not_object)})


def id_cases(op):
    base = valid_body(op) if op.body_schema is not None else None
    for id_value in MALFORMED_IDS + (str(uuid.uuid4()),):
        yield Case("id %s" % id_value[:40], 404, base, id_value=id_value)


def cases(op, secret):
    if op.path == WEBHOOK:
        return list(webhook_cases(secret))
    found = list(body_cases(op)) if op.body_schema is not None else []
    return found + list(id_cases(op)) if op.has_id else found


# ---- the state the answers must leave alone ------------------------------------------

def snapshot(api, document_ops, records):
    """Every paged list's count, and every record an item route reads."""
    state = {}
    for op in document_ops:
        if op.method != "get" or op.public or "stream" in op.path:
            continue
        if op.paged:
            r = api.get(op.concrete_path(records), params={"limit": 1})
            state[str(op)] = r.status_code, r.headers.get("X-Total-Count")
        elif op.has_id:
            r = api.get(op.concrete_path(records))
            state[str(op)] = r.status_code, r.json()
    return state


def error_shape_problems(r, case):
    problems = []
    if r.status_code != case.status:
        problems.append("answered %d, not %d" % (r.status_code, case.status))
    if not 400 <= r.status_code < 500:
        problems.append("not a 4xx")
    if not r.headers.get("Content-Type", "").startswith("application/json"):
        return problems + ["Content-Type %r" % r.headers.get("Content-Type")]
    body = r.json()
    if not (isinstance(body, dict) and isinstance(body.get("title"), str) and body["title"]
            and isinstance(body.get("description"), str) and body["description"]):
        problems.append("not the error shape: %.200s" % r.text)
    elif case.status == 422 or case.field:
        fields = [e.get("field") for e in body.get("errors") or () if isinstance(e, dict)
                  and isinstance(e.get("message"), str)]
        if case.field and case.field not in fields:
            problems.append("errors name %s, not %s" % (fields, case.field))
    return problems


@pytest.mark.operations.with_args(has_body_or_id)
def test_bad_input_is_a_4xx_in_the_error_shape_and_changes_nothing(operation, api, stack,
                                                                    document, records):
    every_operation = operations(document)
    before = snapshot(api, every_operation, records)
    failures = []
    for case in cases(operation, stack.env["META_APP_SECRET"]):
        path = operation.concrete_path(records, case.id_value)
        r = api.request(operation.method.upper(), path, data=case.raw, headers=case.headers,
                        auth=operation.path != WEBHOOK)
        failures += ["%s: %s" % (case.label, problem) for problem in error_shape_problems(r, case)]
    assert not failures, "\n".join(failures)
    assert snapshot(api, every_operation, records) == before


def test_the_table_covers_every_route_with_a_body_or_an_id(document):
    walked = [op for op in operations(document) if has_body_or_id(op)]
    assert {str(op) for op in walked} >= {
        "POST /api/leads", "PATCH /api/leads/{id}", "DELETE /api/leads/{id}",
        "POST /api/leads/{id}/activity", "POST /api/leads/{id}/convert", "POST /api/contacts",
        "PATCH /api/contacts/{id}", "POST /api/contacts/{id}/history", "POST /api/tasks",
        "PATCH /api/tasks/{id}", "GET /api/campaigns/{id}", "POST /api/webhooks/meta"}
    for op in walked:
        assert cases(op, "secret"), op
