"""`findap up`'s embedded Postgres and Redis: real servers from wheels, data kept on restart."""

from __future__ import annotations

from pathlib import Path

from redis import Redis
from sqlalchemy import create_engine, text

from app.embedded import start_embedded_services
from app.kernel.db.migrate import upgrade_database


def test_embedded_services_start_migrate_and_keep_data_across_restarts(tmp_path: Path) -> None:
    services = start_embedded_services(tmp_path)
    try:
        upgrade_database(services.database_url)
        engine = create_engine(services.database_url)
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO batches (id, project_id, status, policy, judge, pairing, "
                    "total_prompts, chunk_size, created_at) VALUES ('batch_kept', "
                    "'proj_default', 'queued', '{}', '{}', '{}', 0, 1, now())"
                )
            )
        engine.dispose()
        assert Redis.from_url(services.redis_url).ping()
    finally:
        services.stop()

    again = start_embedded_services(tmp_path)
    try:
        engine = create_engine(again.database_url)
        with engine.connect() as connection:
            kept = connection.scalar(text("SELECT id FROM batches"))
        engine.dispose()
        assert kept == "batch_kept"
    finally:
        again.stop()
