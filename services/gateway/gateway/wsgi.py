"""gunicorn's entry: `gunicorn -c gunicorn.conf.py gateway.wsgi:app`.

Each worker process builds its own RPC client (one reply queue per process)
and key-store pool; the consumer thread starts on the first call, after fork.
"""
from crm_common.config import Settings
from gateway.app import create_app
from gateway.keys import KeyStore
from gateway.rpc import RpcClient

settings = Settings.from_env()
client = RpcClient(settings.amqp_uri, timeout=settings.rpc_timeout)
keys = KeyStore.open(settings, migrate=False)
app = create_app(settings, client, keys)
