"""Reading requests and writing list responses, the same way on every route."""
import json
from urllib.parse import urlencode

import falcon
from pydantic import ValidationError

from gateway.errors import JsonError, bad_request, validation_error
from gateway.schemas.base import read_only_fields

MAX_BODY_BYTES = 1024 * 1024
# How much of a refused (too large) body is read and thrown away, so the
# connection can serve the client's next request: gunicorn closes a keep-alive
# connection whose body was left unread (past 64 KiB) after answering, and a
# client that reuses it at once sees "connection closed without response".
MAX_DISCARD_BYTES = 8 * MAX_BODY_BYTES


def too_large(req):
    """413, after reading what is left of the body (within MAX_DISCARD_BYTES)."""
    left = req.content_length
    if left is not None and left <= MAX_DISCARD_BYTES:
        stream = req.bounded_stream
        while stream.read(64 * 1024):
            pass
    return JsonError(falcon.HTTP_413, "The body is larger than 1 MiB.")
MAX_JSON_DEPTH = 32


def _field_name(model, loc):
    if not loc:
        return "body"
    head = loc[0]
    info = model.model_fields.get(head) if isinstance(head, str) else None
    name = (info.alias or head) if info else str(head)
    return ".".join([name] + [str(part) for part in loc[1:]])


def _message(error):
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if error["type"] == "extra_forbidden":
        message = "unknown field"
    return message


def field_errors(model, exc):
    return [{"field": _field_name(model, e["loc"]), "message": _message(e)} for e in exc.errors()]


def _check_structure(value, limit):
    """Refuse JSON nested deeper than `limit` (400) and text holding NUL
    characters, which PostgreSQL cannot store (422 naming the field)."""
    stack = [(value, 1, ())]
    while stack:
        item, depth, path = stack.pop()
        if depth > limit:
            raise bad_request("The body is nested too deeply.")
        if isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in key:
                    raise bad_request("A field name contains a NUL character.")
                stack.append((child, depth + 1, path + (key,)))
        elif isinstance(item, list):
            stack.extend((child, depth + 1, path + (str(i),)) for i, child in enumerate(item))
        elif isinstance(item, str) and "\x00" in item:
            field = ".".join(path) or "body"
            raise validation_error([{"field": field, "message": "must not contain NUL characters"}])


def read_body(req):
    """The raw request body, at most 1 MiB (413 past it)."""
    length = req.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise too_large(req)
    raw = req.bounded_stream.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise too_large(req)
    return raw


def read_json(req, allow_empty=False):
    """The request body as a JSON object: 415 for another content type, 413
    past 1 MiB, 400 when it is not JSON (or not UTF-8, or nested too deep)."""
    raw = read_body(req)
    if not raw.strip():
        if allow_empty:
            return {}
        raise bad_request("A JSON body is required.")
    media_type = (req.content_type or "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise JsonError(falcon.HTTP_415, "The body must be application/json.")
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise JsonError(falcon.HTTP_422, "The body must be a JSON object.", errors=[
            {"field": "body", "message": "must be a JSON object"}])
    return body


def parse_json(raw):
    """`raw` bytes as JSON: 400 when they are not JSON (or not UTF-8, or nested
    too deep), 422 for text holding NUL characters."""
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise bad_request("The body is not valid JSON (UTF-8).")
    _check_structure(body, MAX_JSON_DEPTH)
    return body


def _reject_constant(name):
    raise ValueError("%s is not JSON" % name)


def validate_body(req, model, allow_empty=False):
    """Parse and validate a body; read-only fields are dropped first. Returns
    a snake_case dict of the fields the client sent."""
    body = read_json(req, allow_empty=allow_empty)
    read_only = getattr(model, "__read_only__", None)
    if read_only:
        body = {k: v for k, v in body.items() if k not in read_only}
    try:
        parsed = model.model_validate(body)
    except ValidationError as exc:
        raise validation_error(field_errors(model, exc))
    return parsed.model_dump(mode="json", exclude_unset=True, by_alias=False)


def ignore_read_only(model, resource_model):
    """Mark `model` (a body) to drop the read-only fields of `resource_model`."""
    model.__read_only__ = read_only_fields(resource_model)
    return model


def validate_query(req, model):
    """Query parameters against `model`; any mistake is a 400."""
    params = {}
    for key, value in req.params.items():
        params[key] = value[-1] if isinstance(value, list) else value
        if "\x00" in params[key]:
            raise bad_request("Bad query parameter: %s contains a NUL character." % key,
                              errors=[{"field": key, "message": "must not contain NUL characters"}])
    try:
        parsed = model.model_validate(params)
    except ValidationError as exc:
        errors = field_errors(model, exc)
        raise bad_request("Bad query parameter: " + "; ".join(
            "%s %s" % (e["field"], e["message"]) for e in errors), errors=errors)
    return parsed.model_dump(by_alias=False)


def page(req, resp, result, limit, offset):
    """A bare JSON array, with X-Total-Count and a Link to the next page."""
    items, total = result["items"], result["total"]
    resp.media = items
    resp.set_header("X-Total-Count", str(total))
    if offset + len(items) < total:
        query = {k: (v[-1] if isinstance(v, list) else v) for k, v in req.params.items()}
        query.update(offset=offset + limit, limit=limit)
        url = "%s%s?%s" % (req.forwarded_prefix, req.path, urlencode(query))
        resp.set_header("Link", '<%s>; rel="next"' % url)
