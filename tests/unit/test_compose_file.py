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


PROMETHEUS_DIR = COMPOSE.parent / "deploy" / "prometheus"


def test_prometheus_runs_only_in_the_monitoring_profile(compose):
    prometheus = compose["services"]["prometheus"]
    assert prometheus["profiles"] == ["monitoring"]
    # nothing of the stack needs it
    assert all("profiles" not in compose["services"][name] for name in STACK)
    for volume in prometheus["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("./"):
            assert (COMPOSE.parent / source).is_file(), "%s mounts %s: no such file" % (
                "prometheus", source)


def test_prometheus_scrapes_the_gateway_and_every_replica_of_every_service(compose):
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(STACK)
    metrics_port = int(compose["x-crm-env"]["CRM_METRICS_PORT"])
    for name in STACK:
        [sd] = jobs[name]["dns_sd_configs"]      # every replica, by Docker's DNS
        assert sd["names"] == [name] and sd["type"] == "A"
        if name == "gateway":
            assert sd["port"] == 8000 and jobs[name]["metrics_path"] == "/metrics"
            ports = [p.split(":")[-1] for p in compose["services"]["gateway"]["ports"]]
            assert "8000" in ports
        else:
            assert sd["port"] == metrics_port
            assert compose["services"][name]["environment"]["CRM_METRICS_PORT"] == str(
                metrics_port)
        labels = compose["services"][name]["labels"]      # for label-based discovery
        assert labels["prometheus.io/scrape"] == "true"
        assert int(labels["prometheus.io/port"]) == sd["port"]
        assert labels["prometheus.io/path"] == jobs[name].get("metrics_path", "/metrics")
    mounted = {v.split(":")[1] for v in compose["services"]["prometheus"]["volumes"]}
    assert set(config["rule_files"]) <= mounted


def test_the_alerts_name_metrics_the_stack_serves():
    code = "\n".join(p.read_text() for p in (COMPOSE.parent / "libs").rglob("*.py")) + \
        "\n".join(p.read_text() for p in (COMPOSE.parent / "services").rglob("*.py"))
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            for metric in re.findall(r"\b(crm_[a-z_]+)", rule["expr"]):
                base = re.sub(r"_(total|count|sum|bucket)$", "", metric)
                assert '"%s"' % base in code or '"%s"' % metric in code, (
                    "%s: %s is not a metric of the stack" % (rule["alert"], metric))
