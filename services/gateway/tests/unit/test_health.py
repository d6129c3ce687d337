"""GET /api/health (contract section 2)."""
from gateway.rpc import RemoteError, ServiceUnavailable

SERVICES = ("leads", "contacts", "tasks", "campaigns", "analytics")


def answer_pings(rpc, **overrides):
    for service in SERVICES:
        if service in overrides:
            rpc.fail(service, "ping", overrides[service])
        else:
            rpc.answer(service, "ping", {"status": "ok"})


def test_all_services_ok_is_200(anon, rpc):
    answer_pings(rpc)
    result = anon.simulate_get("/api/health")
    assert result.status_code == 200
    assert result.json == {"status": "ok", "services": {s: "ok" for s in SERVICES}}


def test_every_service_is_pinged_within_the_rpc_timeout(anon, rpc, settings):
    answer_pings(rpc)
    anon.simulate_get("/api/health")
    pings = [c for c in rpc.calls if c.method == "ping"]
    assert sorted(c.service for c in pings) == sorted(SERVICES)
    assert all(c.timeout is not None and c.timeout <= settings.rpc_timeout for c in pings)


def test_one_unavailable_service_is_503_marking_it(anon, rpc):
    answer_pings(rpc, tasks=ServiceUnavailable("tasks", "no answer within 1.0 s"))
    result = anon.simulate_get("/api/health")
    assert result.status_code == 503
    assert result.json["services"]["tasks"] == "unavailable"
    assert all(result.json["services"][s] == "ok" for s in SERVICES if s != "tasks")
    assert result.json["status"] != "ok"
    assert int(result.headers["Retry-After"]) > 0


def test_a_service_whose_ping_fails_is_503_marking_it(anon, rpc):
    answer_pings(rpc, leads=RemoteError({"exc_path": "crm_common.errors.Unavailable",
                                         "exc_args": [{"description": "db down"}],
                                         "value": "db down"}))
    result = anon.simulate_get("/api/health")
    assert result.status_code == 503
    assert result.json["services"]["leads"] != "ok"
    assert result.json["services"]["contacts"] == "ok"
