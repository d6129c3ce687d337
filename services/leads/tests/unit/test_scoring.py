from leads import scoring


def test_a_senior_buyer_at_a_business_address_scores_higher_than_a_bare_contact():
    bare = scoring.initial_score("someone@gmail.com")
    senior = scoring.initial_score("cto@acme.io", company="Acme", job_title="CTO",
                                   phone="+1555", source="Referral", value=20000)
    assert bare == scoring.BASE
    assert senior > bare
    assert 0 <= senior <= 100


def test_titles_are_matched_by_word_not_by_substring():
    # "director" is senior; "coordinator" contains no senior word
    assert scoring.initial_score("a@gmail.com", job_title="Sales Director") == scoring.BASE + 25
    assert scoring.initial_score("a@gmail.com", job_title="Coordinator") == scoring.BASE


def test_value_bands():
    base = scoring.initial_score("a@gmail.com")
    assert scoring.initial_score("a@gmail.com", value=1) == base + 5
    assert scoring.initial_score("a@gmail.com", value=1000) == base + 10
    assert scoring.initial_score("a@gmail.com", value=10000) == base + 15


def test_activities_move_the_score_within_bounds():
    assert scoring.after_activity(50, "meeting") == 65
    assert scoring.after_activity(95, "meeting") == 100
    assert scoring.after_activity(50, "note_created") == 50
