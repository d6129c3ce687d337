"""End to end: SIGTERM to a service process of the running stack lets its
work in flight finish (an RPC behind an HTTP request, event handlers), loses
and doubles nothing, and the process exits 0, to be restarted by the
supervisor. Each test waits for the stack to be whole again: the others
share it."""
import os
import signal
import threading
import time
import uuid

import requests
import sqlalchemy as sa

from crm_common.config import with_database
from crm_common.testing import lock_waiters, wait_for, writes_held

SERVICES = ("leads", "contacts", "tasks", "campaigns", "analytics")


def service_engine(stack, service):
    url = with_database(stack.env.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432"),
                        "%s_%s" % (stack.env["CRM_DB_PREFIX"], service))
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


class StackLog:
    """What the stack writes to its log from now on."""

    def __init__(self, stack):
        self.path = stack.log_path
        self.offset = os.path.getsize(self.path)

    def text(self):
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            return f.read().decode(errors="replace")


def stopped(pid):
    """The process is gone (the supervisor reaps it at once)."""
    return not os.path.exists("/proc/%d" % pid)


def whole_again(api, service, old_pid, stack):
    def healthy():
        try:
            r = requests.get(api.url + "/api/health", timeout=5)
        except requests.RequestException:
            return False
        return (r.status_code == 200 and r.json()["services"] == {s: "ok" for s in SERVICES}
                and stack.service_pids(service) not in ([], [old_pid]))

    wait_for(healthy, timeout=120, every=0.5, what="the stack to be whole again")


def sigterm(stack, service):
    [pid] = stack.service_pids(service)
    os.kill(pid, signal.SIGTERM)
    return pid, time.monotonic()


def test_sigterm_lets_an_rpc_in_flight_finish_and_the_process_exit_0(stack, api, event_tap):
    # The gateway gives the call CRM_RPC_TIMEOUT (3 s): the insert is held
    # 1.5 s from the request on, the SIGTERM coming while it waits.
    tap = event_tap("leads")
    engine = service_engine(stack, "leads")
    log = StackLog(stack)
    email = "e2e.sigterm.%s@example.com" % uuid.uuid4().hex[:10]
    answers = []
    try:
        with writes_held(engine, "leads"):
            requested = time.monotonic()
            caller = threading.Thread(target=lambda: answers.append(
                api.post("/api/leads", json={"name": "Sig Term", "email": email})))
            caller.start()
            wait_for(lambda: lock_waiters(engine) >= 1, timeout=2.5, every=0.02,
                     what="the insert to wait")
            pid, signalled = sigterm(stack, "leads")
            time.sleep(max(0.3, requested + 1.5 - time.monotonic()))
            assert not stopped(pid), "the process did not wait for its worker"
        caller.join(15)
        [answer] = answers
        assert answer.status_code == 201, answer.text
        lead = answer.json()

        wait_for(lambda: stopped(pid), timeout=20, what="the process to exit")
        assert time.monotonic() - signalled < 20
        wait_for(lambda: "[stack] leads exited with 0; restarting" in log.text(), timeout=10,
                 what="the supervisor to log the exit status")
        tap.wait(lambda key, body: key == "lead_created" and body["lead"]["id"] == lead["id"],
                 timeout=60)
        whole_again(api, "leads", pid, stack)
        found = api.get("/api/leads", params={"search": email})
        assert found.status_code == 200 and found.headers["X-Total-Count"] == "1"
        assert found.json()[0]["id"] == lead["id"]
    finally:
        engine.dispose()


def test_sigterm_lets_event_handlers_in_flight_finish_each_applied_once(stack, api):
    engine = service_engine(stack, "analytics")
    log = StackLog(stack)
    source = "sigterm-%s" % uuid.uuid4().hex[:8]
    try:
        with writes_held(engine, "daily_leads"):
            for n in range(3):
                r = api.post("/api/leads", json={"name": "Handled %d" % n, "source": source,
                                                 "email": "e2e.%s.%d@example.com" % (source, n)})
                assert r.status_code == 201, r.text
            # the three lead_created handlers wait to add to the day's counts
            wait_for(lambda: lock_waiters(engine) >= 3, timeout=30, what="the handlers to wait")
            pid, signalled = sigterm(stack, "analytics")
            time.sleep(1.0)
            assert not stopped(pid), "the process did not wait for its workers"
        wait_for(lambda: stopped(pid), timeout=20, what="the process to exit")
        assert time.monotonic() - signalled < 20
        wait_for(lambda: "[stack] analytics exited with 0; restarting" in log.text(), timeout=10,
                 what="the supervisor to log the exit status")
        whole_again(api, "analytics", pid, stack)

        def sources():
            r = api.get("/api/dashboard/charts/sources")
            return r.status_code == 200 and {p["name"]: p["value"] for p in r.json()}.get(source)

        assert wait_for(sources, timeout=30, what="the dashboard to count them") == 3
    finally:
        engine.dispose()
