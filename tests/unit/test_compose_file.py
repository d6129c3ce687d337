"""docker-compose.yml, validated without a container engine: interpolated as
compose does (every variable unset, so each default is what is checked),
then parsed against the Compose Specification by compose-spec (the Rust
compose_spec library's strict parser), plus the cross-references a parser
does not follow."""
import json
import re
from pathlib import Path

import pytest
import yaml
from compose_spec import PyCompose

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
STACK = ("leads", "contacts", "tasks", "campaigns", "analytics", "gateway")
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME:+alt}: innermost first
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^${}]*))?\}")


def interpolate(text, env):
    """Compose's variable interpolation of `text` with `env` (nested defaults
    included); an unset required variable (`:?`) raises ValueError."""
    def one(match):
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        value = env.get(name)
        unset = value is None or (op and op.startswith(":") and value == "")
        if op in (":-", "-"):
            return arg if unset else value
        if op in (":?", "?"):
            if unset:
                raise ValueError("%s is required: %s" % (name, arg))
            return value
        if op in (":+", "+"):
            return "" if unset else arg
        return value or ""

    text = text.replace("$$", "\0")
    while True:
        replaced = VARIABLE.sub(one, text)
        if replaced == text:
            break
        text = replaced
    if "${" in text:
        raise ValueError("an interpolation compose would not understand is left: %s"
                         % text[text.index("${"):][:60])
    return text.replace("\0", "$")


def parse(text, env=None):
    """The file as compose reads it: interpolated, YAML (merge keys
    resolved), then validated against the specification (ValueError)."""
    data = yaml.safe_load(interpolate(text, env or {}))
    PyCompose.from_json(json.dumps(data))
    return data


@pytest.fixture(scope="module")
def compose():
    return parse(COMPOSE.read_text())


def test_the_file_follows_the_compose_specification(compose):
    assert set(STACK) <= set(compose["services"])


@pytest.mark.parametrize("broken, why", [
    (("depends_on:", "depends_onn:"), "an unknown key"),
    (("condition: service_healthy", "condition: service_happy"), "an unknown condition"),
    (("restart: ", "restart: sometimes #"), "an unknown restart policy"),
])
def test_the_check_refuses_a_broken_file(broken, why):
    text = COMPOSE.read_text()
    assert broken[0] in text, "the example no longer applies: pick another line to break"
    with pytest.raises(ValueError):
        parse(text.replace(broken[0], broken[1], 1))


def test_every_dependency_is_a_service_of_the_file(compose):
    services = compose["services"]
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        for target in depends:
            assert target in services, "%s depends on %s, which is not defined" % (name, target)
            if isinstance(depends, dict):
                condition = depends[target].get("condition")
                if condition == "service_healthy":
                    assert "healthcheck" in services[target], (
                        "%s waits for %s to be healthy, which has no healthcheck"
                        % (name, target))


def test_named_volumes_are_declared(compose):
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source")
            if source and not source.startswith((".", "/", "~")):
                assert source in declared, "%s mounts %s, not declared" % (name, source)


def test_interpolation_follows_compose():
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d} ${UNSET:-d} ${EMPTY:-d} ${EMPTY-d}", env) == "x d d "
    assert interpolate("${UNSET:-http://h:${PORT:-8000}}", env) == "http://h:8000"
    assert interpolate("$$HOME ${SET:+alt} ${UNSET:+alt}", env) == "$HOME alt "
    with pytest.raises(ValueError):
        interpolate("${UNSET:?needed}", env)
