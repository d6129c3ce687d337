"""GET /api/settings/config and POST /api/settings/regenerate-key."""
import pytest

from gateway.rpc import ServiceUnavailable

LAST_SYNC = {"at": "2024-03-10T10:00:00.000Z", "status": "error", "error": "Invalid OAuth token"}


@pytest.fixture(autouse=True)
def last_sync(rpc):
    rpc.answer("campaigns", "last_sync", LAST_SYNC)


def test_config_shows_the_last_sync(client):
    assert client.simulate_get("/api/settings/config").json["lastSync"] == LAST_SYNC


def test_config_before_any_sync_has_no_last_sync(client, rpc):
    rpc.answer("campaigns", "last_sync", None)
    assert client.simulate_get("/api/settings/config").json["lastSync"] is None


def test_config_is_503_while_campaigns_cannot_say_how_the_last_sync_went(client, rpc):
    rpc.fail("campaigns", "last_sync", ServiceUnavailable("campaigns", "down"))
    result = client.simulate_get("/api/settings/config")
    assert result.status_code == 503 and result.headers["Retry-After"]


def test_config_shows_the_masked_key(client, keys, api_key):
    result = client.simulate_get("/api/settings/config")
    assert result.status_code == 200
    assert result.json["apiKey"] == keys.masked()
    assert api_key not in result.text


def test_config_shows_the_webhook_url_on_the_public_url(client, settings):
    result = client.simulate_get("/api/settings/config")
    assert result.json["webhookUrl"] == settings.public_url + "/api/webhooks/meta"


def test_config_masks_the_verify_token_and_hides_the_app_secret(client, settings):
    result = client.simulate_get("/api/settings/config")
    token = result.json["metaVerifyToken"]
    assert token and token != settings.meta_verify_token
    assert settings.meta_verify_token not in result.text
    assert result.json["metaAppSecretSet"] is True
    assert settings.meta_app_secret not in result.text


def test_config_without_meta_secrets(rpc, keys, auth):
    from falcon import testing

    from crm_common.config import Settings
    from gateway.app import create_app

    app = create_app(Settings(rpc_timeout=1.0), rpc, keys)
    result = testing.TestClient(app, headers=auth).simulate_get("/api/settings/config")
    assert result.json["metaAppSecretSet"] is False
    assert result.json["metaVerifyToken"] is None


def test_regenerate_returns_the_new_key(client, keys, api_key):
    result = client.simulate_post("/api/settings/regenerate-key")
    assert result.status_code == 200
    assert result.json == {"apiKey": keys.active}
    assert result.json["apiKey"] != api_key


def test_after_regenerate_only_the_new_key_works(client, anon, api_key):
    new = client.simulate_post("/api/settings/regenerate-key").json["apiKey"]
    old = anon.simulate_get("/api/settings/config", headers={"X-API-Key": api_key})
    assert old.status_code == 401
    fresh = anon.simulate_get("/api/settings/config", headers={"X-API-Key": new})
    assert fresh.status_code == 200
