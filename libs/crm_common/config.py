"""Settings read from the environment (the names of the contract).

Every process reads the same names, so one environment configures the stack.
"""
import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

DEFAULT_CORS = "http://localhost:5173,http://localhost:3000"


def _env(name, default=None):
    value = os.environ.get(name)
    return default if value in (None, "") else value


@dataclass(frozen=True)
class Settings:
    amqp_uri: str = "amqp://guest:guest@127.0.0.1:5672//"
    database_url: str = "postgresql://postgres@127.0.0.1:5432"
    db_prefix: str = "crm"
    port: int = 8000
    api_key: str = None
    public_url: str = "http://127.0.0.1:8000"
    cors_origins: tuple = field(default_factory=lambda: tuple(DEFAULT_CORS.split(",")))
    rpc_timeout: float = 5.0
    sse_max_streams: int = 64
    sse_heartbeat: float = 15.0
    meta_graph_url: str = "https://graph.facebook.com/v21.0"
    meta_access_token: str = None
    meta_ad_account_id: str = None
    meta_sync_interval: int = 900
    meta_app_secret: str = None
    # While rotating the app secret: the old one, still taken for signatures.
    meta_app_secret_previous: str = None
    meta_verify_token: str = None

    @classmethod
    def from_env(cls):
        return cls(
            amqp_uri=_env("AMQP_URI", cls.amqp_uri),
            database_url=_env("DATABASE_URL", cls.database_url),
            db_prefix=_env("CRM_DB_PREFIX", cls.db_prefix),
            port=int(_env("CRM_PORT", cls.port)),
            api_key=_env("CRM_API_KEY"),
            public_url=_env("CRM_PUBLIC_URL", cls.public_url).rstrip("/"),
            cors_origins=tuple(o.strip() for o in _env("CRM_CORS_ORIGINS", DEFAULT_CORS).split(",")
                               if o.strip()),
            rpc_timeout=float(_env("CRM_RPC_TIMEOUT", cls.rpc_timeout)),
            sse_max_streams=int(_env("CRM_SSE_MAX_STREAMS", cls.sse_max_streams)),
            sse_heartbeat=float(_env("CRM_SSE_HEARTBEAT", cls.sse_heartbeat)),
            meta_graph_url=_env("META_GRAPH_URL", cls.meta_graph_url).rstrip("/"),
            meta_access_token=_env("META_ACCESS_TOKEN"),
            meta_ad_account_id=_env("META_AD_ACCOUNT_ID"),
            meta_sync_interval=int(_env("META_SYNC_INTERVAL", cls.meta_sync_interval)),
            meta_app_secret=_env("META_APP_SECRET"),
            meta_app_secret_previous=_env("META_APP_SECRET_PREVIOUS"),
            meta_verify_token=_env("META_VERIFY_TOKEN"),
        )

    def database_name(self, owner):
        return "%s_%s" % (self.db_prefix, owner)

    def database_dsn(self, owner):
        """The SQLAlchemy URL of the database that `owner` (a service) owns."""
        return with_database(self.database_url, self.database_name(owner))


def with_database(server_url, name):
    parts = urlsplit(server_url)
    scheme = parts.scheme
    if scheme in ("postgres", "postgresql"):
        scheme = "postgresql+psycopg2"
    return urlunsplit((scheme, parts.netloc, "/" + name, parts.query, ""))
