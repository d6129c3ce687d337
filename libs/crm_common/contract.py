"""Test tooling for the HTTP API's contract: a stack to test it on, the
schemathesis pass, and a walk over the OpenAPI document. Used by `make fuzz`
(bin/fuzz.py) and tests/contract; the services never import it.

The schemathesis pass: every operation of /api/openapi.json gets generated
requests, valid and invalid (schemathesis's examples, coverage, fuzzing and
stateful phases), and every answer is checked against the document: no
server error, a declared status code, content type, headers and body,
invalid data refused, and no answer without the API key. schemathesis runs
as its own process (its CLI, with JSON and HAR reports that are counted
here), away from the eventlet of the test process.
"""
import collections
import contextlib
import dataclasses
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import urllib.request

from crm_common.fake_graph import FakeGraph
from crm_common.testing import RunningStack, delete_vhost, drop_databases, free_port, vhost_uri

CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "response_headers_conformance",
          "negative_data_rejection", "ignored_auth")
# Left out: positive_data_acceptance. The document cannot say everything the
# API refuses on purpose (a task's relatedToId must match its relatedToType,
# a dashboard range spans at most 3660 days, a status list names known ones).

# Fuzzed on their own, after every other operation.
LAST = {
    ("post", "/api/settings/regenerate-key"):
        "rotates the API key the fuzzer sends: any request after it would be a 401",
}
# Not fuzzed at all.
EXCLUDED = {
    ("get", "/api/events/stream"):
        "a server-sent event stream never ends, so no request to it completes; its auth "
        "is in tests/contract/test_security.py, the rest in tests/integration",
}
# schemathesis itself leaves out the operation serving the document it reads.
SCHEMA_OPERATION = ("get", "/api/openapi.json")
# Answers the fuzzer cannot get past, and why that is right.
EXPECTED_REFUSALS = {
    ("post", "/api/webhooks/meta"): "403: the fuzzer cannot sign with META_APP_SECRET",
    ("get", "/api/webhooks/meta"): "403: the fuzzer does not know META_VERIFY_TOKEN",
}

AD_ACCOUNT = "act_4242"


def seed_graph(graph, campaigns=3, days=4):
    """Campaigns and daily insights in the fake Graph API, so that the
    campaign routes have rows to answer with once a sync ran."""
    for n in range(1, campaigns + 1):
        cid = "12000000%04d" % n
        graph.campaigns[cid] = {"id": cid, "name": "Campaign %d" % n, "status": "ACTIVE",
                                "objective": "OUTCOME_SALES"}
        for day in range(1, days + 1):
            graph.insights.append({
                "campaign_id": cid, "date_start": "2024-03-%02d" % day,
                "date_stop": "2024-03-%02d" % day, "spend": "%d.50" % (10 * n + day),
                "impressions": str(1000 * day), "clicks": str(30 * day),
                "actions": [{"action_type": "lead", "value": str(day)}],
                "action_values": [{"action_type": "purchase", "value": "%d.00" % (40 * day)}]})


def stack_env(prefix, graph, base=None):
    """The environment of a stack under test: its own databases and vhost, a
    free port, and a generated API key and Meta secrets (new for every
    stack, so that a test can look for them where they must not be)."""
    return dict(base if base is not None else os.environ,
                CRM_DB_PREFIX=prefix, CRM_PORT=str(free_port()), AMQP_URI=vhost_uri(prefix),
                CRM_API_KEY="crm_" + secrets.token_hex(32),
                CRM_PUBLIC_URL="https://crm.example.com", CRM_GATEWAY_WORKERS="2",
                # A 503 fails the "no 5xx" check: give a busy machine time first.
                CRM_RPC_TIMEOUT="10",
                META_GRAPH_URL=graph.url, META_ACCESS_TOKEN=graph.token,
                META_AD_ACCOUNT_ID=AD_ACCOUNT,
                META_APP_SECRET="app-secret-" + secrets.token_hex(16),
                META_VERIFY_TOKEN="verify-" + secrets.token_hex(16),
                META_LEAD_RETRY_BACKOFF="0.5", META_LEAD_MAX_ATTEMPTS="2",
                META_SYNC_INTERVAL="86400")     # no timed sync moves the data under a test


@contextlib.contextmanager
def stack_under_test(prefix, log_path, python=sys.executable, base_env=None):
    """A fresh stack (bin/stack.py) on databases `<prefix>_*` and vhost
    `prefix`, reading a seeded fake Graph API; campaigns synced once. Yields
    (RunningStack, FakeGraph); removes its databases and vhost afterwards."""
    graph = FakeGraph(token="graph-" + secrets.token_hex(16), account=AD_ACCOUNT)
    seed_graph(graph)
    env = stack_env(prefix, graph, base_env)
    server = env.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432")
    if os.path.exists(log_path):
        os.remove(log_path)         # one run per log: a test reads it
    drop_databases(server, prefix)
    stack = None
    try:
        stack = RunningStack(env, python, log_path=log_path).start()
        sync = urllib.request.Request(stack.url + "/api/campaigns/sync", method="POST", headers={
            "Authorization": "Bearer " + env["CRM_API_KEY"]})
        with urllib.request.urlopen(sync, timeout=60) as answer:
            answer.read()
        yield stack, graph
    finally:
        if stack is not None:
            stack.stop()
        drop_databases(server, prefix)
        delete_vhost(prefix)
        graph.stop()


def operation_ids(url):
    """{(method, path): operationId} of the running stack's document."""
    with urllib.request.urlopen(url + "/api/openapi.json", timeout=15) as answer:
        doc = json.load(answer)
    return {(method, path): op["operationId"]
            for path, item in doc["paths"].items() for method, op in item.items()}


@dataclasses.dataclass
class FuzzResult:
    requests: int = 0               # HTTP requests sent (HAR entries)
    operations: int = 0             # operations tested
    failures: int = 0               # unique failures (a check that did not hold)
    errors: int = 0                 # schemathesis's own errors (a request it could not make)
    exit_code: int = 0
    statuses: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    output: str = ""

    def __add__(self, other):
        return FuzzResult(self.requests + other.requests, self.operations + other.operations,
                          self.failures + other.failures, self.errors + other.errors,
                          self.exit_code or other.exit_code, self.statuses + other.statuses,
                          self.output + other.output)

    @property
    def ok(self):
        return self.exit_code == 0 and not self.failures and not self.errors

    def failure_report(self):
        """schemathesis's FAILURES and ERRORS sections (its reproduction steps)."""
        text = self.output
        start = min((i for i in (text.find("= FAILURES ="), text.find("= ERRORS =")) if i >= 0),
                    default=-1)
        return text[start:] if start >= 0 else text[-4000:]


def run_pass(url, key, workdir, max_examples, include=(), exclude=(), seed=None, phases=None,
             echo=False, timeout=1800):
    """One `st run` over the operations `include` (operationIds; all when
    empty) but `exclude`; reports and schemathesis's files go to `workdir`."""
    os.makedirs(workdir, exist_ok=True)
    json_path, har_path = os.path.join(workdir, "report.json"), os.path.join(workdir, "har.json")
    argv = [sys.executable, "-m", "schemathesis.cli", "run", url + "/api/openapi.json",
            "--checks", ",".join(CHECKS), "--header", "Authorization: Bearer " + key,
            "--max-examples", str(max_examples), "--request-timeout", "30",
            "--generation-database", "none", "--no-color",
            "--report", "json,har", "--report-json-path", json_path,
            "--report-har-path", har_path]
    for op_id in include:
        argv += ["--include-operation-id", op_id]
    for op_id in exclude:
        argv += ["--exclude-operation-id", op_id]
    if seed is not None:
        argv += ["--seed", str(seed)]
    if phases:
        argv += ["--phases", ",".join(phases)]
    proc = subprocess.Popen(argv, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", env=dict(os.environ, COLUMNS="120"))
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if echo:
                sys.stdout.write(line)
                sys.stdout.flush()
        proc.wait(timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    result = FuzzResult(exit_code=proc.returncode, output="".join(lines))
    if os.path.exists(json_path):
        with open(json_path) as f:
            report = json.load(f)
        result.operations = (report.get("operations") or {}).get("tested", 0)
        result.failures = report["test_cases"]["unique_failures"]
        result.errors = sum(group["count"] for group in report.get("errors") or ())
    else:
        result.errors += 1              # it never got to write a report
    if os.path.exists(har_path):
        with open(har_path) as f:
            entries = json.load(f)["log"]["entries"]
        result.requests = len(entries)
        result.statuses = collections.Counter(e["response"]["status"] for e in entries)
    return result


def fuzz(url, key, workdir, max_examples, seed=None, phases=None, echo=False):
    """Every operation but EXCLUDED, then the LAST ones on their own.
    Returns the totals and the number of operations in the document; a pass
    that tested fewer operations than it should counts as an error."""
    ids = operation_ids(url)
    unknown = (set(EXCLUDED) | set(LAST)) - set(ids)
    if unknown:
        raise AssertionError("the document no longer has %s: update crm_common.fuzzing"
                             % sorted(unknown))
    held_back = [ids[op] for op in list(EXCLUDED) + list(LAST)]
    result = run_pass(url, key, os.path.join(workdir, "main"), max_examples, exclude=held_back,
                      seed=seed, phases=phases, echo=echo)
    result += run_pass(url, key, os.path.join(workdir, "last"), max_examples,
                       include=[ids[op] for op in LAST], seed=seed, phases=phases, echo=echo)
    if result.operations != len(ids) - len(EXCLUDED) - (SCHEMA_OPERATION in ids):
        result.errors += 1
        result.output += "\n= ERRORS =\n%d operations tested of %d documented\n" % (
            result.operations, len(ids))
    return result, len(ids)


def summary(result, documented):
    left_out = ["%s %s" % (m.upper(), p) for m, p in list(EXCLUDED) + [SCHEMA_OPERATION]]
    return ("schemathesis: %d requests, %d of %d operations (not fuzzed: %s), %d failures, "
            "%d errors; statuses %s" % (
                result.requests, result.operations, documented, ", ".join(left_out),
                result.failures, result.errors, dict(sorted(result.statuses.items()))))


# ---- walking the document -------------------------------------------------------
REF_PREFIX = "#/components/schemas/"


def generated_document():
    """The document the gateway generates (what /api/openapi.json serves),
    from the app's routes, with no broker or database behind it."""
    from falcon import testing

    from crm_common.config import Settings
    from gateway.app import create_app

    app = create_app(Settings(), client=None, keys=None, streams=object())
    return testing.TestClient(app).simulate_get("/api/openapi.json").json


@dataclasses.dataclass(frozen=True)
class Operation:
    """One operation of a document."""
    method: str
    path: str
    doc: dict = dataclasses.field(compare=False, repr=False)

    def __str__(self):
        return "%s %s" % (self.method.upper(), self.path)

    @property
    def spec(self):
        return self.doc["paths"][self.path][self.method]

    @property
    def public(self):
        return self.spec.get("security") == []

    @property
    def has_id(self):
        return "{id}" in self.path

    @property
    def collection(self):
        """The collection an {id} in the path names (`leads` for /api/leads/{id}/activity)."""
        return self.path.split("/")[2]

    def resolve(self, schema):
        ref = schema.get("$ref")
        return self.doc["components"]["schemas"][ref[len(REF_PREFIX):]] if ref else schema

    @property
    def body_schema(self):
        body = self.spec.get("requestBody")
        return self.resolve(body["content"]["application/json"]["schema"]) if body else None

    def query_parameter(self, name):
        return next((p for p in self.spec.get("parameters", ())
                     if p["in"] == "query" and p["name"] == name), None)

    @property
    def paged(self):
        """A list with paging headers (X-Total-Count)."""
        ok = self.spec["responses"].get("200") or {}
        return "X-Total-Count" in (ok.get("headers") or {})

    def concrete_path(self, ids, id_value=None):
        """The path with {id} replaced by `id_value`, or by ids[collection]."""
        if not self.has_id:
            return self.path
        return self.path.replace("{id}", id_value if id_value is not None else ids[self.collection])


def operations(doc):
    return [Operation(method, path, doc) for path, item in doc["paths"].items()
            for method in item]


def sign(secret, raw):
    """Meta's X-Hub-Signature-256 of `raw` with `secret`."""
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
