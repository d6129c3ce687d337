import datetime as dt
from decimal import Decimal

from campaigns.sync import campaign_values, day_values, objective_words


def test_objectives_in_words():
    assert objective_words("OUTCOME_SALES") == "Sales"
    assert objective_words("OUTCOME_APP_PROMOTION") == "App promotion"
    assert objective_words("LINK_CLICKS") == "Link Clicks"
    assert objective_words(None) is None


def test_campaign_status_lower_case():
    assert campaign_values({"id": 7, "name": "A", "status": "PAUSED",
                            "objective": "OUTCOME_LEADS"}) == {
        "meta_campaign_id": "7", "name": "A", "status": "paused", "objective": "Leads"}


def test_day_numbers_are_exact_and_actions_never_summed():
    row = day_values({"campaign_id": "1", "date_start": "2024-03-01", "spend": "10.10",
                      "impressions": "100", "clicks": "7",
                      "actions": [{"action_type": "link_click", "value": "7"},
                                  {"action_type": "onsite_conversion.lead_grouped", "value": "3"},
                                  {"action_type": "lead", "value": "3"}],
                      "action_values": [{"action_type": "omni_purchase", "value": "99.99"},
                                        {"action_type": "offsite_conversion.fb_pixel_purchase",
                                         "value": "99.99"}]})
    assert row == {"meta_campaign_id": "1", "date": dt.date(2024, 3, 1),
                   "spend": Decimal("10.10"), "impressions": 100, "clicks": 7, "leads": 3,
                   "revenue": Decimal("99.99")}


def test_missing_numbers_are_zero():
    row = day_values({"campaign_id": "1", "date_start": "2024-03-01"})
    assert row["spend"] == 0 and row["leads"] == 0 and row["revenue"] == 0
