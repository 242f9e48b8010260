"""Alembic: the schema builds from empty, tears down to nothing, and is what the models say."""

from __future__ import annotations

import uuid

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url

import app.kernel.models  # noqa: F401  (every table on Base.metadata)
from app.kernel.db.base import Base
from app.kernel.db.migrate import downgrade_database, upgrade_database
from tests.conftest import ADMIN_DATABASE_URL, plain_url


def test_upgrade_head_from_empty_then_downgrade_base() -> None:
    name = f"findap_migrations_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(plain_url(ADMIN_DATABASE_URL), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(ADMIN_DATABASE_URL).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    try:
        upgrade_database(url)
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        downgrade_database(url)
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade_database(url)  # and up again, as a redeploy would
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
        with psycopg.connect(plain_url(ADMIN_DATABASE_URL), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migrations_build_what_the_models_declare(database_url: str) -> None:
    """No table, column or index of the models is missing from the migrations, or extra."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    finally:
        engine.dispose()
