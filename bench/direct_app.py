"""The read-path benchmark's baseline: GET /api/leads and /api/leads/{id}
answered straight from the leads database by Falcon + SQLAlchemy, with no
gateway, RPC, broker or API key in between.

It reuses the leads service's own query (leads.repository) and serialization
(leads.schemas), so the same SQL runs and the same JSON comes back; what the
gateway path costs beyond this is the architecture's price.

    PYTHONPATH=libs:services/leads:bench gunicorn -k gthread ... direct_app:app
"""
import os

import falcon
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from crm_common.config import Settings
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


class LeadItem:
    def on_get(self, req, resp, id):
        with Session() as session:
            lead = LeadRepository(session).get(id)
            if lead is None:
                raise falcon.HTTPNotFound()
            resp.media = lead_to_dict(lead)


app = falcon.App()
app.add_route("/api/leads", Leads())
app.add_route("/api/leads/{id}", LeadItem())
