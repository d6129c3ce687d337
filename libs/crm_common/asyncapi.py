"""The AsyncAPI document of the events (docs/asyncapi.yaml), made checkable:
every `$ref` resolved, within the document and into the OpenAPI document
beside it, and each event's payload and headers schema compiled into a
validator. Test tooling (tests/e2e/test_asyncapi.py); the services never
import it.

The referenced OpenAPI document must be OpenAPI 3.1, whose schemas are plain
JSON Schema 2020-12 (3.0's `nullable` and friends are not JSON Schema): the
payloads are validated as 2020-12, with `format` asserted (uuid, date-time,
email, ...). The document's own schemas keep to what AsyncAPI 2's schema
dialect (draft-07) reads the same way.
"""
import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import jsonschema_rs
import yaml

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"


class DocumentError(Exception):
    """The document, or one it refers to, is not what this loader can read
    (a `$ref` that points nowhere, a reference cycle, an OpenAPI 3.0 file,
    a channel that does not name its exchange, ...)."""


def _read(path):
    text = path.read_text(encoding="utf-8")
    document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    version = document.get("openapi") if isinstance(document, dict) else None
    if version is not None and not str(version).startswith("3.1."):
        raise DocumentError("%s is OpenAPI %s: only 3.1 schemas are JSON Schema (3.0's `nullable` "
                            "is not), so only a 3.1 document can be referenced" % (path, version))
    return document


def _pointer(document, pointer, ref, path):
    """The node a JSON pointer (RFC 6901) names in `document`."""
    node = document
    for token in pointer.split("/")[1:] if pointer else ():
        token = token.replace("~1", "/").replace("~0", "~")
        try:
            node = node[int(token)] if isinstance(node, list) else node[token]
        except (KeyError, IndexError, ValueError, TypeError):
            raise DocumentError("$ref %r in %s does not resolve (no %r)" % (ref, path.name, token))
    return node


class Resolver:
    """Replaces each `$ref` by a copy of what it names; relative file parts
    are read from beside the referring file (and cached)."""

    def __init__(self):
        self._documents = {}
        # "<ref> in <file>" of each $ref that had keywords beside it: 2020-12
        # applies them, a draft-07 reader (AsyncAPI 2 tools) ignores them.
        self.refs_with_siblings = []

    def document(self, path):
        path = Path(path).resolve()
        if path not in self._documents:
            try:
                self._documents[path] = _read(path)
            except OSError as exc:
                raise DocumentError("cannot read %s: %s" % (path, exc))
        return self._documents[path]

    def resolve(self, node, path, chain=()):
        """`node`, from the document at `path`, with every `$ref` resolved."""
        if isinstance(node, list):
            return [self.resolve(item, path, chain) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if not isinstance(ref, str):
            return {key: self.resolve(value, path, chain) for key, value in node.items()}
        target_path, pointer = self._locate(ref, path)
        if (target_path, pointer) in chain:
            raise DocumentError("$ref cycle through %r in %s" % (ref, path.name))
        target = _pointer(self.document(target_path), pointer, ref, path)
        resolved = self.resolve(target, target_path, chain + ((target_path, pointer),))
        siblings = {key: value for key, value in node.items() if key != "$ref"}
        if not siblings:
            return resolved
        self.refs_with_siblings.append("%s in %s" % (ref, path.name))
        merged = self.resolve(siblings, path, chain)
        merged["allOf"] = merged.get("allOf", []) + [resolved]
        return merged

    def _locate(self, ref, path):
        location, _, fragment = ref.partition("#")
        if ":" in location:
            raise DocumentError("$ref %r in %s: only local files are read" % (ref, path.name))
        target = (path.parent / unquote(location)).resolve() if location else Path(path).resolve()
        pointer = unquote(fragment)
        if pointer and not pointer.startswith("/"):
            raise DocumentError("$ref %r in %s: the fragment is not a JSON pointer"
                                % (ref, path.name))
        return target, pointer


@dataclass(frozen=True)
class Event:
    """One documented event: `<source>.<event_type>` on exchange `<source>.events`."""
    source: str
    event_type: str
    exchange: dict          # the channel's AMQP binding: name, type, durable, ...
    operation: dict         # the subscribe operation, resolved
    message: dict           # its message, resolved
    content_type: str

    @property
    def name(self):
        return "%s.%s" % (self.source, self.event_type)

    @property
    def delivery_mode(self):
        return self.operation.get("bindings", {}).get("amqp", {}).get("deliveryMode")

    @property
    def content_encoding(self):
        return self.message.get("bindings", {}).get("amqp", {}).get("contentEncoding")


def _errors(validator, instance, what):
    return ["%s %s: %s" % (what, "/" + "/".join(str(p) for p in error.instance_path),
                           error.message)
            for error in validator.iter_errors(instance)]


class EventDocument:
    """docs/asyncapi.yaml (or `path`), resolved: `events` by (source,
    event_type), and `problems(...)` of one published message."""

    def __init__(self, path=DOCUMENT):
        self.path = Path(path).resolve()
        resolver = Resolver()
        raw = resolver.document(self.path)
        if not str(raw.get("asyncapi", "")).startswith("2."):
            raise DocumentError("%s is not an AsyncAPI 2 document" % self.path)
        self.document = resolver.resolve(raw, self.path)
        self.refs_with_siblings = resolver.refs_with_siblings
        default_type = self.document.get("defaultContentType")
        self.events = {}
        self._validators = {}
        for channel_name, channel in self.document["channels"].items():
            event = self._event(channel_name, channel, default_type)
            self.events[(event.source, event.event_type)] = event
            self._validators[(event.source, event.event_type)] = (
                self._compile(event.message.get("payload"), event.name, "payload"),
                self._compile(event.message.get("headers"), event.name, "headers"))

    @staticmethod
    def _event(channel_name, channel, default_type):
        source, _, event_type = channel_name.partition(".")
        try:
            exchange = channel["bindings"]["amqp"]["exchange"]
            operation = channel["subscribe"]
            message = operation["message"]
        except (KeyError, TypeError):
            raise DocumentError("channel %s: no AMQP exchange binding, subscribe operation or "
                                "message" % channel_name)
        if exchange.get("name") != "%s.events" % source:
            raise DocumentError("channel %s is not on exchange %s.events" % (channel_name, source))
        if message.get("name") != event_type:
            raise DocumentError("channel %s carries message %r, not %r"
                                % (channel_name, message.get("name"), event_type))
        return Event(source, event_type, exchange, operation, message,
                     message.get("contentType") or default_type)

    @staticmethod
    def _compile(schema, event_name, part):
        if not isinstance(schema, dict):
            raise DocumentError("%s has no %s schema" % (event_name, part))
        try:
            return jsonschema_rs.Draft202012Validator(schema, validate_formats=True)
        except (ValueError, jsonschema_rs.ReferencingError) as exc:
            raise DocumentError("%s's %s schema is not valid JSON Schema: %s"
                                % (event_name, part, exc))

    def documented(self):
        """{(source, event_type)} of every documented event."""
        return set(self.events)

    def problems(self, source, event_type, payload, headers=None):
        """What in a message of `source`'s `event_type` (its JSON body, and its
        AMQP headers unless None) the document does not allow; [] when none."""
        if (source, event_type) not in self._validators:
            return ["%s.%s is not in %s" % (source, event_type, self.path.name)]
        payload_validator, headers_validator = self._validators[(source, event_type)]
        name = "%s.%s" % (source, event_type)
        found = _errors(payload_validator, payload, name + " payload")
        if headers is not None:
            found += _errors(headers_validator, headers, name + " headers")
        return found
