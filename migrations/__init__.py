"""Alembic migrations for findap's Postgres schema."""
