"""End to end: a client that retries a write with the same Idempotency-Key
gets the first answer again, and the write is applied once."""
import uuid


def test_a_create_retried_with_its_key_gets_the_same_201_and_makes_one_lead(api):
    body = {"name": "Retry", "email": "retry.%s@example.com" % uuid.uuid4().hex[:8]}
    key = {"Idempotency-Key": "e2e-" + uuid.uuid4().hex}
    first = api.post("/api/leads", json=body, headers=dict(key))
    assert first.status_code == 201, first.text
    again = api.post("/api/leads", json=body, headers=dict(key))
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert again.headers["Location"] == first.headers["Location"]
    found = api.get("/api/leads", params={"search": body["email"]})
    assert found.headers["X-Total-Count"] == "1"

    other = api.post("/api/leads", json=dict(body, name="Other"), headers=dict(key))
    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"

    without_key = api.post("/api/leads", json=body)
    assert without_key.status_code == 409


def test_a_conversion_retried_with_its_key_is_201_both_times(api):
    lead = api.post("/api/leads", json={"name": "Conv", "email": "conv.%s@example.com"
                                        % uuid.uuid4().hex[:8]}).json()
    key = {"Idempotency-Key": "e2e-" + uuid.uuid4().hex}
    first = api.post("/api/leads/%s/convert" % lead["id"], headers=dict(key))
    again = api.post("/api/leads/%s/convert" % lead["id"], headers=dict(key))
    assert (first.status_code, again.status_code) == (201, 201), (first.text, again.text)
    assert again.json() == first.json()


def test_a_malformed_key_is_400(api):
    r = api.post("/api/tasks", json={"title": "x"}, headers={"Idempotency-Key": "x" * 256})
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "Idempotency-Key"
