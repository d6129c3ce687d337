from crm_common.ids import like_pattern, parse_id


def test_like_pattern_escapes_wildcards():
    assert like_pattern("100%_off") == "%100\\%\\_off%"
    assert like_pattern("back\\slash") == "%back\\\\slash%"


def test_parse_id_accepts_only_uuids():
    assert parse_id("6f1c7b0e-7c52-4a55-9a0e-1f6a3a7c2b10") is not None
    for bad in ("not-a-uuid", "1' OR 1=1", None, 42):
        assert parse_id(bad) is None
