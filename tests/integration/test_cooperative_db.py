"""psycopg2 is made cooperative under eventlet: two slow queries in one
service process run at the same time instead of one after the other."""
import datetime as dt

import eventlet
import sqlalchemy as sa
from nameko.rpc import rpc
from nameko.standalone.rpc import ServiceRpcProxy

from contacts.dependencies import ALEMBIC_DIR
from crm_common.db import Database


class SlowQueries:
    name = "slow_queries"
    db = Database(ALEMBIC_DIR, relay=False)

    @rpc
    def sleep(self, seconds):
        with self.db.transaction() as tx:
            started = tx.session.execute(sa.text("SELECT clock_timestamp()")).scalar()
            tx.session.execute(sa.text("SELECT pg_sleep(:s)"), {"s": seconds})
            ended = tx.session.execute(sa.text("SELECT clock_timestamp()")).scalar()
        return [started.isoformat(), ended.isoformat()]


def test_two_slow_queries_in_one_service_overlap(container_factory, service_config):
    container = container_factory(SlowQueries, service_config)
    container.start()

    def call():
        with ServiceRpcProxy("slow_queries", service_config, timeout=30) as proxy:
            return [dt.datetime.fromisoformat(t) for t in proxy.sleep(1.0)]

    (start_a, end_a), (start_b, end_b) = [g.wait() for g in
                                          [eventlet.spawn(call), eventlet.spawn(call)]]
    # Each query ran for a second; they overlap when each started before the other ended.
    assert start_a < end_b and start_b < end_a, (start_a, end_a, start_b, end_b)
