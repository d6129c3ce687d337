"""Every change of api_keys notifies `crm_api_keys` (when it commits), so the
gateway processes drop their cached copy of the active keys (gateway/keys.py),
whoever made the change: the API, the CLI or an operator's psql.

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("""
        CREATE FUNCTION api_keys_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('crm_api_keys', '');
            RETURN NULL;
        END $$
    """)
    op.execute("""
        CREATE TRIGGER api_keys_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON api_keys
        FOR EACH STATEMENT EXECUTE FUNCTION api_keys_changed()
    """)


def downgrade():
    op.execute("DROP TRIGGER api_keys_changed ON api_keys")
    op.execute("DROP FUNCTION api_keys_changed()")
