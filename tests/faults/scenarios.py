"""The fault scenarios (docs/faults.md). Each one starts a stack of its own,
drives it with a bounded load, injects its fault, and checks the system
against what the gateway acknowledged; it returns a `harness.Result` (one
row of the table `bin/faults.py` prints). Every stack, database and vhost is
removed when a scenario ends, however it ends."""
import json
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass

from harness import (SERVICES, Client, FaultStack, Recorder, Verdict, add_graph_leads,
                     check_dashboard, check_quiet, check_writes, cut_databases, deliver,
                     restore_databases, say, summarize)

RESTART_GATE = "CRM_FAULTS_RESTART_DEPS"


@dataclass
class Options:
    threads: int = 4            # load threads
    pause: float = 0.03         # mean pause between one thread's requests (s)
    settle: float = 3.0         # load after each recovery before the next fault (s)
    outage: float = 8.0         # how long a broker / database / Graph outage lasts (s)
    webhook_leads: int = 60     # Graph submissions in the webhook burst
    restart_deps: bool = False  # allowed to restart the machine's RabbitMQ and PostgreSQL


def probe(stack, service):
    """One read served by `service` (200 expected once it is back)."""
    path = {"leads": "/api/leads", "contacts": "/api/contacts", "tasks": "/api/tasks",
            "campaigns": "/api/campaigns", "analytics": "/api/dashboard/stats"}[service]
    client = Client(stack.url, stack.key, Recorder())
    status, _ = client.request("GET", path, params={"limit": 1} if service != "analytics" else None)
    return status


def wait_service(stack, service, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, services = stack.health()
        if services.get(service) == "ok" and probe(stack, service) == 200:
            return True
        time.sleep(0.25)
    return False


def changed_processes(before, after, except_labels=()):
    return sorted(label for label in set(before) | set(after)
                  if label not in except_labels and before.get(label) != after.get(label))


def outage_calls(recorder, service, start, end):
    return [c for c in recorder.calls if c.service == service and start <= c.started <= end
            and not c.route.startswith("CHECK")]


def finish(name, stack, load, recorder, verdict, max_time_bound, dashboard_timeout=60.0):
    """Stop the load, wait for the stack, run the checks, make the row."""
    load.stop()
    verdict.failures += load.errors
    try:
        stack.wait_healthy(90)
    except AssertionError as exc:
        verdict.failures.append(str(exc))
    c = stack.connections
    verdict.notes.append("PostgreSQL connections: this stack held at most %d; the server at most "
                         "%d of max_connections %s" % (c["ours"], c["all"], c["max_connections"]))
    if stack.log_mentions("too many clients"):
        verdict.notes.append("PostgreSQL refused connections (too many clients) during the run: "
                             "see %s" % stack.log_path)
    client = Client(stack.url, stack.key, recorder)
    for check in (lambda: check_writes(client, recorder, verdict),
                  lambda: check_dashboard(client, verdict, timeout=dashboard_timeout),
                  lambda: check_quiet(stack, verdict)):
        try:
            check()
        except Exception as exc:        # a check that cannot run is a failure, not a crash
            verdict.failures.append("a check could not run: %s: %s" % (type(exc).__name__, exc))
    return summarize(name, recorder, verdict, max_time_bound)


# -- 1. kill -9 of each service in turn ----------------------------------------------
def kill_each_service(opts, kills=2):
    """Each service is killed `kills` times in a row, the next kill as soon as
    it serves again: the supervisor then waits longer before restarting it
    (its backoff doubles), so the service stays away longer than
    CRM_RPC_TIMEOUT and calls to it must end as 503s, in time."""
    name = "1 kill -9 each service"
    with FaultStack("kill9") as stack:
        recorder, verdict = Recorder(), Verdict()
        load = stack.load(recorder, threads=opts.threads, pause=opts.pause, seconds=300)
        time.sleep(opts.settle)
        bound = stack.rpc_timeout + 1
        for service in SERVICES:
            downs, calls = [], []
            for _ in range(kills):
                before = stack.processes()
                [pid] = before[service]
                killed_at = recorder.now()
                stack.kill(pid)
                try:
                    stack.wait_processes(service, 1, old_pids=[pid])
                except AssertionError as exc:
                    verdict.failures.append(str(exc))
                    break
                if not wait_service(stack, service):
                    verdict.failures.append("%s does not serve again 60 s after its restart"
                                            % service)
                back_at = recorder.now()
                downs.append(back_at - killed_at)
                calls += outage_calls(recorder, service, killed_at, back_at)
                after = stack.processes()
                changed = changed_processes(before, after, except_labels=(service,))
                if changed:
                    verdict.failures.append("killing %s changed other processes: %s" % (
                        service, ", ".join("%s %s -> %s" % (l, before.get(l), after.get(l))
                                           for l in changed)))
            slow = [c for c in calls if c.elapsed > bound]
            verdict.notes.append("%s killed %d times, away %s s: %d calls to it meanwhile, %d "
                                 "answered 503, %d 2xx, the slowest in %.1f s" % (
                                     service, len(downs), " and ".join("%.1f" % d for d in downs),
                                     len(calls), sum(c.status == 503 for c in calls),
                                     sum(200 <= c.status < 300 for c in calls),
                                     max((c.elapsed for c in calls), default=0)))
            if slow:
                verdict.failures.append("%d calls to %s while it was down took over %.0f s"
                                        % (len(slow), service, bound))
            time.sleep(opts.settle)
        return finish(name, stack, load, recorder, verdict, max_time_bound=bound)


# -- 2. two instances, one killed -------------------------------------------------------
BURSTS = {"leads": (("create_lead", 1), ("log_activity", 3)),
          "contacts": (("create_contact", 1),),
          "tasks": (("create_task", 1),)}


def kill_one_of_two(opts, services=("leads", "contacts", "tasks"), rounds=3):
    name = "2 kill -9 one of two"
    with FaultStack("two", instances=["%s=2" % s for s in services]) as stack:
        recorder, verdict = Recorder(), Verdict()
        load = stack.load(recorder, threads=opts.threads, pause=opts.pause, seconds=300)
        windows = []
        time.sleep(opts.settle)
        for n in range(rounds):
            for service in services:
                before = stack.processes()
                victim = before[service][n % 2]
                # A burst of writes to that service around the kill: more of
                # them in flight, some between their commit and their reply.
                burst = stack.load(recorder, threads=6, pause=0, seconds=2.0,
                                   mix=BURSTS[service])
                time.sleep(1.0)
                killed_at = recorder.now()
                stack.kill(victim)
                try:
                    stack.wait_processes(service, 2, old_pids=[victim])
                except AssertionError as exc:
                    verdict.failures.append(str(exc))
                    break
                if not wait_service(stack, service):
                    verdict.failures.append("%s does not serve after its restart" % service)
                back_at = recorder.now()
                burst.stop()
                after = stack.processes()
                changed = changed_processes(before, after, except_labels=(service,))
                survivor = [p for p in before[service] if p != victim]
                if set(survivor) - set(after.get(service, [])):
                    changed.append("the surviving %s instance" % service)
                if changed:
                    verdict.failures.append("killing one %s changed other processes: %s"
                                            % (service, ", ".join(changed)))
                windows.append((service, n + 1, killed_at, back_at))
                time.sleep(opts.settle)
        # The survivor answers: from a second after the kill until the killed
        # instance is back (and at least 5 s after the kill), no call fails.
        for service, n, killed_at, back_at in windows:
            calls = outage_calls(recorder, service, killed_at + 1.0,
                                 max(back_at, killed_at + 5.0))
            refused = [c for c in calls if c.status >= 500 or c.status == 0]
            verdict.notes.append("%s #%d killed at t=%.1f, back at t=%.1f: %d calls from a second "
                                 "after the kill, %d failed" % (
                                     service, n, killed_at, back_at, len(calls), len(refused)))
            if refused:
                verdict.failures.append(
                    "with one %s instance killed, %d calls to the other failed (%s)" % (
                        service, len(refused), ", ".join(sorted(
                            {"%s %d" % (c.route, c.status) for c in refused}))))
        return finish(name, stack, load, recorder, verdict,
                      max_time_bound=stack.rpc_timeout + 1)


# -- 3. RabbitMQ restarted; 3b. the broker drops this stack's connections -------------------
def rabbitmqctl(*args, timeout=120):
    done = subprocess.run(["rabbitmqctl"] + list(args), capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode:
        raise RuntimeError("rabbitmqctl %s failed: %s" % (" ".join(args), done.stderr.strip()))


def queue_webhook_leads(stack, recorder, count, fetch_delay):
    """Deliveries whose Graph fetches are still running when the fault hits:
    their leads are committed (events in the outbox) while it lasts."""
    ids = add_graph_leads(stack.graph, recorder, count)
    stack.graph.delay = fetch_delay
    client = Client(stack.url, stack.key, recorder)
    for lid in ids:
        deliver(client, [lid])
    return ids


def check_webhook_leads(stack, recorder, verdict, ids, timeout=90):
    """Exactly one lead per leadgen id (found by searching its unique email),
    with exactly one submission note on its timeline."""
    client = Client(stack.url, stack.key, recorder)
    deadline = time.monotonic() + timeout
    found = {}
    while time.monotonic() < deadline:
        found = {lid: search_leads(client, email) for lid, email in ids.items()}
        if all(leads for leads in found.values()):
            break
        time.sleep(1)
    for lid, leads in found.items():
        if not leads:
            verdict.lost.append("lead of leadgen %s (%s)" % (lid, ids[lid]))
        elif len(leads) > 1:
            verdict.duplicated.append("leadgen %s made %d leads" % (lid, len(leads)))
        else:
            status, timeline = client.request(
                "GET", "/api/leads/%s/activity" % leads[0]["id"],
                route="CHECK GET /api/leads/{id}/activity")
            notes = sum(a["title"] == SUBMISSION_NOTE for a in timeline) if status == 200 else None
            if notes != 1:
                verdict.duplicated.append("leadgen %s: %s submission notes on its lead"
                                          % (lid, notes))
    return found


SUBMISSION_NOTE = "Facebook lead form submitted"


def search_leads(client, email):
    status, body = client.request("GET", "/api/leads", route="CHECK GET /api/leads?search",
                                  params={"search": email})
    return body if status == 200 else None


def broker_outage(opts, name, fault, label):
    """Load, webhook leads in flight, `fault(stack, recorder)`, recovery, checks."""
    with FaultStack(label) as stack:
        recorder, verdict = Recorder(), Verdict()
        load = stack.load(recorder, threads=opts.threads, pause=opts.pause, seconds=300)
        time.sleep(opts.settle)
        before = stack.processes()
        ids = queue_webhook_leads(stack, recorder, 8, fetch_delay=2.0)
        time.sleep(0.5)
        down_at = recorder.now()
        try:
            waiting = fault(stack, recorder)
        finally:
            stack.graph.delay = 0.0
        if waiting:
            verdict.notes.append("events waiting in the outbox during the outage: %s" % waiting)
        try:
            back = stack.wait_healthy(120)
            verdict.notes.append("healthy %.1f s after the broker returned" % back)
        except AssertionError as exc:
            verdict.failures.append(str(exc))
        time.sleep(2 * opts.settle)
        after = stack.processes()
        restarted = changed_processes(before, after)
        verdict.notes.append("restarted by the supervisor: %s" % (
            ", ".join(restarted) if restarted else "nothing"))
        supervisor_lines = restart_lines(stack)
        if supervisor_lines:
            verdict.notes.append("supervisor: %s" % "; ".join(supervisor_lines[-8:]))
        check_webhook_leads(stack, recorder, verdict, ids)
        calls = [c for c in recorder.calls if c.started >= down_at]
        verdict.notes.append("503 after the fault: %d" % sum(c.status == 503 for c in calls))
        return finish(name, stack, load, recorder, verdict,
                      max_time_bound=2 * stack.rpc_timeout + 4, dashboard_timeout=120)


def restart_lines(stack):
    try:
        with open(stack.log_path, errors="replace") as f:
            return [line.strip()[8:] for line in f if line.startswith("[stack]")
                    and "restarting" in line]
    except OSError:
        return []


def outbox_while(stack, seconds):
    """Sleep `seconds`, sampling the unpublished outbox rows; the most seen."""
    most = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            for service, n in stack.outbox_rows().items():
                if isinstance(n, int):
                    most[service] = max(most.get(service, 0), n)
        except Exception:
            pass
        time.sleep(0.5)
    return most


def broker_restart(opts):
    def fault(stack, recorder):
        say("rabbitmqctl stop_app")
        rabbitmqctl("stop_app")
        try:
            return outbox_while(stack, opts.outage)
        finally:
            say("rabbitmqctl start_app")
            rabbitmqctl("start_app")
    return broker_outage(opts, "3 RabbitMQ restart", fault, "broker-restart")


def broker_drop(opts):
    def fault(stack, recorder):
        waiting = {}
        for _ in range(2):
            rabbitmqctl("close_all_connections", "-p", stack.vhost, "fault suite: broker drop")
            for k, v in outbox_while(stack, opts.outage / 2).items():
                waiting[k] = max(waiting.get(k, 0), v)
        return waiting
    return broker_outage(opts, "3b broker drops connections", fault, "broker-drop")


# -- 4. PostgreSQL restarted; 4b. this stack's databases cut off ---------------------------
def postgres_cluster():
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions or not shutil.which("pg_ctlcluster"):
        raise RuntimeError("no local PostgreSQL cluster to restart (pg_ctlcluster)")
    return versions[-1]


def database_outage(opts, name, label, fault):
    with FaultStack(label) as stack:
        recorder, verdict = Recorder(), Verdict()
        load = stack.load(recorder, threads=opts.threads, pause=opts.pause, seconds=300)
        time.sleep(opts.settle)
        before = stack.processes()
        down_at = recorder.now()
        fault(stack)
        up_at = recorder.now()
        try:
            back = stack.wait_healthy(60)
            verdict.notes.append("healthy %.1f s after the database returned" % back)
        except AssertionError as exc:
            verdict.failures.append(str(exc))
        time.sleep(2 * opts.settle)
        after = stack.processes()
        changed = changed_processes(before, after)
        if changed:
            verdict.failures.append("processes restarted: %s (none should be)" % ", ".join(changed))
        during = [c for c in recorder.calls if down_at <= c.started <= up_at]
        verdict.notes.append("while away: %d calls, %d answered 503, %d 2xx" % (
            len(during), sum(c.status == 503 for c in during),
            sum(200 <= c.status < 300 for c in during)))
        late = [c for c in recorder.calls if c.started > up_at + 10 and c.status >= 500]
        if late:
            verdict.failures.append("%d 5xx answers more than 10 s after the database returned"
                                    % len(late))
        return finish(name, stack, load, recorder, verdict,
                      max_time_bound=2 * stack.rpc_timeout + 4)


def postgres_restart(opts):
    def fault(stack):
        version = postgres_cluster()
        say("pg_ctlcluster %s main stop" % version)
        subprocess.run(["pg_ctlcluster", version, "main", "stop", "-m", "fast"], check=True,
                       timeout=60)
        try:
            time.sleep(opts.outage)
        finally:
            say("pg_ctlcluster %s main start" % version)
            subprocess.run(["pg_ctlcluster", version, "main", "start"], check=True, timeout=60)
    return database_outage(opts, "4 PostgreSQL restart", "pg-restart", fault)


def database_cut(opts):
    def fault(stack):
        names = cut_databases(stack.prefix)
        try:
            time.sleep(opts.outage)
        finally:
            restore_databases(names)
    return database_outage(opts, "4b databases cut off", "db-cut", fault)


# -- 5. the webhook: a burst with duplicates and a Graph outage ---------------------------
def webhook_burst(opts, senders=6):
    name = "5 webhook burst + Graph outage"
    with FaultStack("webhook") as stack:
        recorder, verdict = Recorder(), Verdict()
        ids = add_graph_leads(stack.graph, recorder, opts.webhook_leads)
        rnd = random.Random()
        occurrences = [lid for lid in ids for _ in range(rnd.choice((2, 3)))]
        rnd.shuffle(occurrences)
        batches = []
        while occurrences:
            size = rnd.randint(1, 4)
            batches.append(occurrences[:size])
            occurrences = occurrences[size:]
        outage_after = len(batches) // 3
        # The burst lasts about twice the outage: deliveries before, during and after it.
        spacing = 2 * opts.outage * senders / len(batches)
        sent = [0]
        lock = threading.Lock()
        failed = []

        def send(part):
            client = Client(stack.url, stack.key, recorder)
            for batch in part:
                with lock:
                    sent[0] += 1
                    if sent[0] == outage_after:
                        say("Graph outage for %.0f s" % opts.outage)
                        stack.graph.outage(opts.outage)
                if deliver(client, batch) != 200:
                    failed.append(batch)
                time.sleep(rnd.uniform(0.5, 1.5) * spacing)

        threads = [threading.Thread(target=send, args=(batches[n::senders],), daemon=True)
                   for n in range(senders)]
        load = stack.load(recorder, threads=2, pause=opts.pause * 3, seconds=300)
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        if failed:
            verdict.failures.append("%d deliveries never answered 200" % len(failed))
        check_webhook_leads(stack, recorder, verdict, ids, timeout=120)
        verdict.notes.append("%d leadgen ids in %d deliveries (%d requests); the Graph outage "
                             "answered %d fetches 503" % (
                                 len(ids), len(batches),
                                 sum(c.route.endswith("webhooks/meta") for c in recorder.calls),
                                 stack.graph.outage_answers))
        if not stack.graph.outage_answers:
            verdict.failures.append("the Graph outage hit no fetch (the scenario tested nothing)")
        return finish(name, stack, load, recorder, verdict, max_time_bound=stack.rpc_timeout + 1)


# -- 6. an analytics consumer killed between handling an event and acking it ------------------
CRASH_POINT = "reliable_events.before_ack:--analytics.on_lead_status_changed"


def crash_before_ack(opts, seconds=None, crash_after=5, prefix=None):
    name = "6 analytics killed before ack"
    marker_dir = tempfile.mkdtemp(prefix="crm-faults-")
    marker = os.path.join(marker_dir, "crashed")
    try:
        env = {"CRM_FAULT_CRASH": CRASH_POINT, "CRM_FAULT_MARKER": marker,
               "CRM_FAULT_CRASH_AFTER": str(crash_after)}
        with FaultStack("crash-ack", env=env, prefix=prefix) as stack:
            recorder, verdict = Recorder(), Verdict()
            before = stack.processes()
            load = stack.load(recorder, threads=opts.threads, pause=opts.pause, seconds=300)
            deadline = time.monotonic() + 60
            while not os.path.exists(marker) and time.monotonic() < deadline:
                time.sleep(0.2)
            if not os.path.exists(marker):
                verdict.failures.append("the fault point was never reached")
                return finish(name, stack, load, recorder, verdict, stack.rpc_timeout + 1)
            time.sleep(0.2)
            with open(marker) as f:
                crash = json.load(f)
            try:
                stack.wait_processes("analytics", 1, old_pids=before["analytics"])
            except AssertionError as exc:
                verdict.failures.append(str(exc))
            if not wait_service(stack, "analytics"):
                verdict.failures.append("analytics does not serve after its restart")
            time.sleep(seconds if seconds is not None else 2 * opts.settle)
            after = stack.processes()
            changed = changed_processes(before, after, except_labels=("analytics",))
            if changed:
                verdict.failures.append("other processes changed: %s" % ", ".join(changed))
            if crash.get("pid") not in before["analytics"]:
                verdict.failures.append("the crash was not in the analytics process: %s" % crash)
            result = finish(name, stack, load, recorder, verdict, stack.rpc_timeout + 1)
            processed = stack.analytics_processed(crash["event_id"])
            note = "crashed on event %s of %s (pid %s); recorded processed %d time(s)" % (
                crash["event_id"], crash["queue"], crash["pid"], processed)
            result.notes.append(note)
            if processed != 1:
                result.failures.append("the crashed event is not recorded processed once: "
                                       + note)
                result.verdict = "FAIL"
            return result
    finally:
        shutil.rmtree(marker_dir, ignore_errors=True)


# The runner's order; `needs_restart`: restarts the machine's RabbitMQ or PostgreSQL.
SCENARIOS = [
    ("kill9", kill_each_service, False),
    ("two-instances", kill_one_of_two, False),
    ("broker-restart", broker_restart, True),
    ("broker-drop", broker_drop, False),
    ("postgres-restart", postgres_restart, True),
    ("db-cut", database_cut, False),
    ("webhook", webhook_burst, False),
    ("crash-before-ack", crash_before_ack, False),
]
