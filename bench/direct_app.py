"""The benchmarks' baseline: the leads routes answered straight from the leads
database by Falcon + SQLAlchemy, with no gateway, RPC, broker or API key in
between.

Reads (bench/read_path.py): GET /api/leads and /api/leads/{id} with the leads
service's own query (leads.repository) and serialization (leads.schemas), so
the same SQL runs and the same JSON comes back.

Writes (bench/write_path.py): POST /api/leads and PATCH /api/leads/{id} run
the leads service's own handlers (leads.handlers: defaults, score, the row,
the savepoint, for a status change the `status_change` activity) in one
transaction, but without what the architecture adds: no outbox row (so no
event and no analytics update), no idempotency-key record, no validation of
the body against the gateway's schema (the handlers' own checks only).

What the gateway path costs beyond this is the architecture's price.

    PYTHONPATH=libs:services/leads:bench gunicorn -k gthread ... direct_app:app
"""
import os

import falcon
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from crm_common.config import Settings
from leads import handlers
from leads.exceptions import DuplicateEmail, InvalidLead, LeadNotFound
from leads.models import STATUSES
from leads.repository import LeadRepository
from leads.schemas import lead_to_dict

settings = Settings.from_env()
# One connection per gunicorn thread, so no request waits for the pool.
engine = sa.create_engine(settings.database_dsn("leads"),
                          pool_size=int(os.environ.get("BENCH_DB_POOL", "16")), max_overflow=0,
                          pool_timeout=5, connect_args={"connect_timeout": 3,
                                                        "options": "-c timezone=UTC"})
Session = sessionmaker(engine, expire_on_commit=False)
# The API's camelCase body names the handlers know by their snake_case name
# (the gateway's schemas translate them, with their validation).
FIELD_NAMES = {"jobTitle": "job_title", "ownerId": "owner_id"}


class WriteWithoutOutbox:
    """The leads service's unit of work minus the architecture: the same
    session and commit, but `emit` writes no outbox row (no event is ever
    published) and no idempotency key is recorded."""

    def __init__(self, session):
        self.session = session

    def emit(self, event_type, payload):
        pass

    def commit(self):
        self.session.commit()


def write(command):
    """`command(tx)` in one transaction, its domain errors as HTTP errors."""
    with Session() as session:
        try:
            return command(WriteWithoutOutbox(session))
        except LeadNotFound:
            raise falcon.HTTPNotFound()
        except DuplicateEmail as exc:
            raise falcon.HTTPConflict(description=str(exc))
        except InvalidLead as exc:
            raise falcon.HTTPUnprocessableEntity(description=str(exc))


def write_body(req):
    body = req.get_media()
    if not isinstance(body, dict):
        raise falcon.HTTPBadRequest(description="a JSON object is required")
    return {FIELD_NAMES.get(k, k): v for k, v in body.items()}


class Leads:
    def on_get(self, req, resp):
        limit = req.get_param_as_int("limit", default=100, min_value=1, max_value=1000)
        offset = req.get_param_as_int("offset", default=0, min_value=0)
        status = req.get_param("status")
        statuses = [s.strip() for s in status.split(",") if s.strip()] if status else None
        if statuses and not set(statuses) <= set(STATUSES):
            raise falcon.HTTPBadRequest(description="unknown status")
        with Session() as session:
            rows, total = LeadRepository(session).search(
                status=statuses, search=req.get_param("search"), limit=limit, offset=offset)
            resp.media = [lead_to_dict(lead) for lead in rows]
        # The gateway's list headers (gateway.http.page), for equal work.
        resp.set_header("X-Total-Count", str(total))
        if offset + len(rows) < total:
            resp.set_header("Link", '<%s?offset=%d&limit=%d>; rel="next"'
                            % (req.path, offset + limit, limit))

    def on_post(self, req, resp):
        body = write_body(req)
        lead = write(lambda tx: handlers.create_lead(tx, body))
        resp.status = falcon.HTTP_201
        resp.location = "/api/leads/%s" % lead["id"]
        resp.media = lead


class LeadItem:
    def on_get(self, req, resp, id):
        with Session() as session:
            lead = LeadRepository(session).get(id)
            if lead is None:
                raise falcon.HTTPNotFound()
            resp.media = lead_to_dict(lead)

    def on_patch(self, req, resp, id):
        changes = write_body(req)
        resp.media = write(lambda tx: handlers.update_lead(tx, id, changes))


app = falcon.App()
app.add_route("/api/leads", Leads())
app.add_route("/api/leads/{id}", LeadItem())
