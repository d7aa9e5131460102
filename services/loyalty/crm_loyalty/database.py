"""The loyalty schema's metadata and declarative base."""

from sqlalchemy.orm import DeclarativeBase

from crm_common.db import make_metadata

SCHEMA = "loyalty"
metadata = make_metadata(SCHEMA)


class Base(DeclarativeBase):
    """Base of every ORM model of the loyalty service."""

    metadata = metadata
