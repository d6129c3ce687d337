"""The contacts service's tables. Its features arrive in a later issue; until
then it owns only its outbox (created by the first migration)."""
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass
