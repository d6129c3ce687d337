"""Run a nameko service with a bounded graceful stop (what every run.sh runs):

    python -m crm_common.serve --config config.yml leads.service

It starts the service as `nameko run` does: eventlet's monkey patch first,
the YAML config read with nameko's own `${VAR:default}` substitution, its
`LOGGING` applied, the service class found by nameko's `import_service`.

It stops differently. On SIGTERM (or SIGINT) the runner stops gracefully: the
entrypoints stop taking messages, the workers under way finish, then the
dependencies stop (the database's outbox relay publishes what those workers
committed). nameko's own `run` waits for the workers without limit; here,
when the stop has not finished within `CRM_SHUTDOWN_TIMEOUT` seconds
(default 20), the runner is killed: what still runs is logged, and the
process exits with status 1. A second signal kills at once. Should even the
kill hang (a worker keeping the whole process busy), the process ends itself
KILL_GRACE (5) seconds later: at most CRM_SHUTDOWN_TIMEOUT + 5 s after the
signal, whatever happens. Exit status 0 after a graceful stop.

Nothing is lost by a kill: a request or event is acked only once its worker
has finished, so the broker delivers a killed worker's message again, and
writes are idempotent (docs/idempotency.md).
"""
import argparse
import errno
import json
import os
import signal
import sys
import time

DEFAULT_SHUTDOWN_TIMEOUT = 20.0
# After the kill, how long the process may take to end before it exits by itself.
KILL_GRACE = 5.0


def shutdown_timeout(environ=os.environ):
    value = (environ.get("CRM_SHUTDOWN_TIMEOUT") or "").strip()
    try:
        seconds = float(value) if value else DEFAULT_SHUTDOWN_TIMEOUT
    except ValueError:
        seconds = -1
    if not seconds > 0:
        raise SystemExit("CRM_SHUTDOWN_TIMEOUT must be a number of seconds above 0, not %r" % value)
    return seconds


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m crm_common.serve",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("services", nargs="+", metavar="module[:service class]")
    parser.add_argument("--config", required=True, help="the service's YAML configuration file")
    return parser.parse_args(argv)


def load_config(path):
    """The config as `nameko run --config` reads it (env substitution included)."""
    import yaml
    from nameko.cli.main import setup_yaml_parser

    setup_yaml_parser()
    with open(path) as f:
        return yaml.safe_load(f)


def workers_running(container):
    """Whether `container` has workers under way, or messages received and
    about to become workers (nameko hands each one to a thread of its own)."""
    return bool(container._worker_threads) or any(
        ".handle_message[" in str(name) for name in container._managed_threads.values())


def keep_consumer_connections_until_workers_finish():
    """nameko 2.14's QueueConsumer closes its broker connection as soon as its
    last consumer is cancelled: in a graceful stop, as the entrypoints stop,
    before the container has waited for the workers they started. The broker
    then takes back those workers' messages and delivers them again (to
    another instance at once, while the first still works on them), and each
    worker's ack, once it has finished, finds no connection. Here the
    connection is kept, consuming nothing, until no worker is left, so each
    message is acked by the worker that handled it. A kill does not wait."""
    from nameko.messaging import QueueConsumer

    if getattr(QueueConsumer.on_iteration, "keeps_connection", False):
        return
    on_iteration = QueueConsumer.on_iteration

    def on_iteration_keeping_connection(self):
        on_iteration(self)
        if (self.should_stop and not self.container._being_killed
                and workers_running(self.container)):
            self.should_stop = False

    on_iteration_keeping_connection.keeps_connection = True
    QueueConsumer.on_iteration = on_iteration_keeping_connection


def unfinished(runner):
    """What keeps the runner from stopping, for the log."""
    found = []
    for container in runner.containers:
        for ctx in list(container._worker_threads):
            found.append("worker %s.%s (call id %s)" % (container.service_name,
                                                       ctx.entrypoint.method_name, ctx.call_id))
    if not found:
        for container in runner.containers:
            found += ["thread %s.%s" % (container.service_name, name)
                      for name in container._managed_threads.values()]
    return ", ".join(found) or "nothing (a dependency's stop)"


class ExitLater:
    """Ends the process some seconds from now, from an OS thread of its own:
    it runs even when a green thread keeps the whole process busy."""

    def __init__(self):
        import eventlet.patcher

        # imported now: a signal handler must not import
        self._threading = eventlet.patcher.original("threading")
        self._sleep = eventlet.patcher.original("time").sleep

    def __call__(self, seconds, why, status=1):
        def end():
            self._sleep(seconds)
            line = {"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "level": "error",
                    "logger": "crm_common.serve", "message": "%s: exiting now" % why}
            os.write(2, (json.dumps(line) + "\n").encode())
            os._exit(status)

        self._threading.Thread(target=end, name="exit-later", daemon=True).start()


class BoundedStop:
    """What SIGTERM and SIGINT do: a graceful stop, killed after `timeout` s
    or at the next signal."""

    def __init__(self, runner, timeout, log):
        import eventlet

        self.runner, self.timeout, self.log = runner, timeout, log
        self.spawn_n, self.spawn_after = eventlet.spawn_n, eventlet.spawn_after
        self.exit_later = ExitLater()
        self.exit_status = 0
        self.started = None
        self.killing = False

    def on_signal(self, signum, frame):
        # A signal handler runs in the main loop and cannot use eventlet's
        # primitives (nameko's `run` says as much): the work goes to green threads.
        name = signal.Signals(signum).name
        if self.started is None:
            self.started = time.monotonic()
            # the bound even if no green thread gets to run again
            self.exit_later(self.timeout + KILL_GRACE, "not stopped %g s after %s"
                            % (self.timeout + KILL_GRACE, name))
            self.spawn_n(self._stop, name)
        else:
            self.spawn_n(self._kill, "%s again" % name)

    def _stop(self, name):
        workers = sum(len(c._worker_threads) for c in self.runner.containers)
        self.log.info("%s: stopping gracefully (%d worker(s) under way; killed if not stopped "
                      "in %g s)", name, workers, self.timeout)
        deadline = self.spawn_after(self.timeout, self._kill,
                                    "not stopped within %g s" % self.timeout)
        try:
            self.runner.stop()
        finally:
            deadline.cancel()

    def _kill(self, reason):
        if self.killing:
            return
        self.killing = True
        self.exit_status = 1
        self.exit_later(KILL_GRACE, "still running %g s after the kill" % KILL_GRACE)
        self.log.error("%s: killing it; still running: %s", reason, unfinished(self.runner))
        self.runner.kill()


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    timeout = shutdown_timeout()

    import eventlet
    eventlet.monkey_patch()  # before anything else is imported, as `nameko run` does

    import logging
    import logging.config

    from nameko.cli.run import import_service
    from nameko.exceptions import CommandError, ConfigurationError
    from nameko.runners import ServiceRunner

    if "." not in sys.path:
        sys.path.insert(0, ".")
    try:
        config = load_config(args.config)
        if "LOGGING" in config:
            logging.config.dictConfig(config["LOGGING"])
        else:
            logging.basicConfig(level=logging.INFO, format="%(message)s")
        services = [cls for path in args.services for cls in import_service(path)]
    except (CommandError, ConfigurationError) as exc:
        print("Error: %s" % exc, file=sys.stderr)
        return 2
    log = logging.getLogger("crm_common.serve")

    keep_consumer_connections_until_workers_finish()
    runner = ServiceRunner(config)
    for cls in services:
        runner.add_service(cls)
    stop = BoundedStop(runner, timeout, log)
    signal.signal(signal.SIGTERM, stop.on_signal)
    signal.signal(signal.SIGINT, stop.on_signal)

    runner.start()
    # As in `nameko run`: a signal arriving while the main green thread waits
    # on a socket interrupts it (EINTR); waiting in a green thread of its own
    # keeps that from the runner.
    waiting = eventlet.spawn(runner.wait)
    while True:
        try:
            waiting.wait()
            break
        except OSError as exc:
            if exc.errno != errno.EINTR:
                raise
    if stop.killing:
        log.warning("killed %.1f s after the signal", time.monotonic() - stop.started)
    elif stop.started is not None:
        log.info("stopped gracefully in %.1f s", time.monotonic() - stop.started)
    return stop.exit_status


if __name__ == "__main__":
    sys.exit(main())
