"""Mapping Meta's lead-ad payloads to leads (pure functions)."""
import datetime as dt

import pytest

from leads.lead_ads import (RetryPolicy, UnusableSubmission, answers_of, lead_fields,
                            submissions_of, submitted_at)

UTC = dt.timezone.utc


def graph_lead(*pairs, **extra):
    return dict({"id": "1", "field_data": [{"name": k, "values": v if isinstance(v, list) else [v]}
                                           for k, v in pairs]}, **extra)


def test_submissions_take_ids_as_strings_or_numbers_and_once_each():
    changes = [{"leadgen_id": 444, "page_id": 9001, "form_id": "555", "ad_id": 666.0},
               {"leadgen_id": "444", "page_id": "other"},
               {"leadgen_id": " 445 "}]
    assert submissions_of({"changes": changes}) == [
        {"leadgen_id": "444", "page_id": "9001", "form_id": "555", "ad_id": "666"},
        {"leadgen_id": "445", "page_id": None, "form_id": None, "ad_id": None}]


@pytest.mark.parametrize("leadgen_id", [None, "", "abc", "1/2", "../x", True, 1.5, [1], {"a": 1},
                                        "9" * 65])
def test_changes_without_a_usable_leadgen_id_are_skipped(leadgen_id):
    assert submissions_of({"changes": [{"leadgen_id": leadgen_id}, "junk", None]}) == []


@pytest.mark.parametrize("delivery", [None, {}, {"changes": None}, {"changes": "x"}])
def test_deliveries_without_changes_have_no_submissions(delivery):
    assert submissions_of(delivery) == []


def test_answers_take_the_first_non_empty_value_of_each_field():
    lead = graph_lead(("email", ["", "a@b.co"]), ("email", "second@b.co"), ("colors", ["red", "blue"]),
                      ("empty", []), ("blank", "  "))
    lead["field_data"] += [None, {"values": ["no name"]}]
    assert answers_of(lead) == {"email": "a@b.co", "colors": "red, blue"}


def test_the_contract_fields_are_mapped_and_the_rest_kept_aside():
    fields, others = lead_fields(graph_lead(
        ("full_name", "Alice Johnson"), ("email", " Alice@Example.COM "), ("phone_number", "+1555"),
        ("company_name", "Acme"), ("job_title", "CTO"), ("budget", "10k")))
    assert fields == {"name": "Alice Johnson", "email": "alice@example.com", "source": "Facebook Ad",
                      "phone": "+1555", "company": "Acme", "job_title": "CTO"}
    assert others == {"budget": "10k"}


@pytest.mark.parametrize("pairs, name", [
    ((("first_name", "Dana"), ("last_name", "Scully")), "Dana Scully"),
    ((("first_name", "Dana"),), "Dana"),
    ((("full_name", "Full"), ("first_name", "First")), "Full"),
    ((), "x@y.io"),
])
def test_the_name_falls_back_to_first_and_last_then_to_the_email(pairs, name):
    fields, _ = lead_fields(graph_lead(("email", "x@y.io"), *pairs))
    assert fields["name"] == name


def test_texts_are_cut_to_their_columns():
    fields, _ = lead_fields(graph_lead(("email", "x@y.io"), ("full_name", "n" * 300),
                                       ("phone_number", "1" * 80), ("company_name", "c" * 300)))
    assert (len(fields["name"]), len(fields["phone"]), len(fields["company"])) == (200, 50, 200)


@pytest.mark.parametrize("lead", [
    graph_lead(("full_name", "No Mail")),
    graph_lead(("email", "not-an-email")),
    graph_lead(("email", "a@" + "b" * 260 + ".com")),
    {"id": "1"},
    "a string",
    None,
])
def test_a_submission_without_a_valid_email_is_unusable(lead):
    with pytest.raises(UnusableSubmission):
        lead_fields(lead)


def test_submitted_at_is_metas_created_time_unless_unusable():
    now = dt.datetime(2024, 3, 11, tzinfo=UTC)
    assert submitted_at({"created_time": "2024-03-10T10:00:00+0000"}, now) == \
        dt.datetime(2024, 3, 10, 10, tzinfo=UTC)
    for bad in (None, "", "yesterday", 1710064800, "2025-01-01T00:00:00+0000"):
        assert submitted_at({"created_time": bad}, now) == now


def test_retry_delays_grow_with_jitter_up_to_the_cap():
    policy = RetryPolicy(max_attempts=10, backoff=1.0, max_backoff=60.0)
    for attempt, base in ((1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (12, 60)):
        for _ in range(20):
            assert 0.8 * base <= policy.delay(attempt) <= 1.2 * base
