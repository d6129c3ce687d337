"""docs/openapi.json is the document the gateway serves (`make openapi`
writes it): a route, schema or parameter changed without rewriting the file
fails here."""
import json
from pathlib import Path

from gateway.openapi import dumps

DOC = Path(__file__).resolve().parents[4] / "docs" / "openapi.json"


def test_the_committed_document_is_the_served_one(anon):
    served = anon.simulate_get("/api/openapi.json")
    assert served.status_code == 200
    committed = json.loads(DOC.read_text(encoding="utf-8"))
    assert committed == served.json, "docs/openapi.json is stale: run `make openapi`"
    assert DOC.read_text(encoding="utf-8") == dumps(served.json)     # and in its written form
