"""The pure helpers of gateway.keys (KeyStore itself needs PostgreSQL)."""
import hashlib
import re

from gateway.keys import KEY_PREFIX, digest, mask, new_key


def test_digest_is_the_sha256_hex_of_the_key():
    assert digest("crm_abc") == hashlib.sha256(b"crm_abc").hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", digest("crm_abc"))


def test_digest_differs_per_key():
    assert digest("crm_abc") != digest("crm_abd")


def test_new_keys_are_prefixed_random_and_long():
    keys = {new_key() for _ in range(50)}
    assert len(keys) == 50
    for key in keys:
        assert key.startswith(KEY_PREFIX)
        assert re.fullmatch(r"[0-9a-f]{64}", key[len(KEY_PREFIX):])


def test_mask_shows_only_prefix_and_suffix():
    key = new_key()
    masked = mask(KEY_PREFIX, key[-4:])
    assert masked.startswith(KEY_PREFIX) and masked.endswith(key[-4:])
    assert key[len(KEY_PREFIX):-4] not in masked
    assert len(masked) < len(key)
