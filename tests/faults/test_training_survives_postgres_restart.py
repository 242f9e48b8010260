"""Postgres restarted while a training job runs (a throwaway embedded server, not the shared one):
the trainer and its supervisor retry their writes, the job finishes, every step's metrics are
kept and the model is registered."""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from sqlalchemy import func, select

from app.kernel.config import Settings
from app.kernel.db.migrate import upgrade_database
from app.kernel.db.session import make_engine, make_session_factory
from app.kernel.models import TrainedModel, TrainingEvent
from app.main import create_app
from tests.conftest import api_key, bearer
from tests.faults.test_postgres_restarted import Postgres
from tests.training.jobs import create_job, events, job, run_training, sft_lines, upload

STEPS = 150


@pytest.fixture
def restartable_postgres() -> Iterator[Postgres]:
    # Not under pytest's tmp_path (see tests/faults/test_postgres_restarted.py).
    with tempfile.TemporaryDirectory(prefix="findap-pg-") as folder:
        server = Postgres(Path(folder) / "pg")
        try:
            upgrade_database(server.url)
            yield server
        finally:
            server.remove()


def test_a_training_job_rides_out_a_postgres_restart_and_registers_its_model(
    restartable_postgres: Postgres, settings: Settings, redis: Redis, tiny_model_dir: Path
) -> None:
    postgres = restartable_postgres
    training = settings.model_copy(
        update={
            "database_url": postgres.url,
            "base_models": {"tiny-base": str(tiny_model_dir)},
            "db_retry_s": 60,  # longer than the outage
            "training_heartbeat_timeout_s": 10,  # a heartbeat every 2.5 s
        }
    )
    engine = make_engine(postgres.url)
    session_factory = make_session_factory(engine)

    def steps_logged() -> int:
        with session_factory() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(TrainingEvent)
                    .where(TrainingEvent.kind == "metrics")
                )
                or 0
            )

    outage: dict[str, int] = {}

    def restart_mid_job() -> None:
        deadline = time.monotonic() + 120
        while steps_logged() < 10:
            assert time.monotonic() < deadline, "the trainer logged no steps in time"
            time.sleep(0.2)
        postgres.stop()
        engine.dispose()
        time.sleep(5)  # several heartbeats, event flushes and a checkpoint meet the outage
        postgres.start()
        outage["restarted_at_step"] = steps_logged()

    with TestClient(create_app(training), headers=bearer(api_key(session_factory))) as client:
        sft = upload(client, "sft", sft_lines())
        created = create_job(
            client,
            method="sft",
            base_model="tiny-base",
            data={"files": [sft]},
            hyperparameters={
                "max_steps": STEPS,
                "batch_size": 2,
                "max_length": 64,
                "learning_rate": 3e-3,
                "warmup_ratio": 0.0,
                "checkpoint_every": 50,
            },
        )
        restarter = threading.Thread(target=restart_mid_job)
        restarter.start()
        run_training(training)  # the train worker, in this (main) thread: RQ wants it
        restarter.join()

        done = job(client, created["id"])
        trainer_log = (training.training_dir / created["id"] / "train.log").read_text()
        assert done["status"] == "succeeded", (done["error"], trainer_log[-3000:])
        assert outage["restarted_at_step"] < STEPS, "the job ended before Postgres came back"
        assert "database unavailable" in trainer_log  # the trainer met the outage and retried
        assert [e["step"] for e in events(client, done["id"], "metrics")] == list(
            range(1, STEPS + 1)
        )
        assert [
            c["step"]
            for c in client.get(f"/v1/training-jobs/{done['id']}/checkpoints").json()["data"]
        ] == [100, 150]
        assert client.get(f"/v1/models/{done['output_model']}").status_code == 200
    with session_factory() as session:
        assert session.get(TrainedModel, done["output_model"]) is not None
    engine.dispose()
