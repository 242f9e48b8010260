"""GET /metrics on a live API while real workers and a real trainer do the work it reports."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from redis import Redis

from app.kernel import metrics_store as store
from app.kernel.config import Settings
from app.kernel.metrics_store import Figures, MetricsStore
from app.kernel.models import TrainedModel, TrainingJob
from app.main import create_app
from tests.conftest import api_key, bearer, project_id
from tests.faults.support import PROMPTS, WorkerProcess, submit, wait_for
from tests.live import live_api
from tests.training.jobs import create_job, job, run_training, sft_lines, upload
from tests.workers.canned_engines import CannedJudge, CannedPolicy
from tests.workers.test_pipeline import CANNED_OPTIONS as SMALL_BATCH_OPTIONS
from tests.workers.test_pipeline import PROMPTS as SMALL_BATCH
from tests.workers.test_pipeline import canned, serve, serve_canned  # noqa: F401
from workers.engines.base import Completion, Generation, Message, SamplingParams

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
METRICS_TOKEN = "metrics-token-for-tests"


@pytest.fixture(scope="session")
def settings(settings: Settings) -> Settings:
    """The tests' settings with a METRICS_TOKEN: without one, /metrics is off."""
    return settings.model_copy(update={"metrics_token": SecretStr(METRICS_TOKEN)})


def parse(exposition: str) -> Samples:
    """Every sample of a text exposition, by name and sorted labels (the parser must accept it)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of this name whose labels include these."""
    return sum(
        found
        for (sample_name, sample_labels), found in samples.items()
        if sample_name == name and set(labels.items()) <= set(sample_labels)
    )


def scrape(url: str) -> Samples:
    response = httpx.get(f"{url}/metrics", headers=bearer(METRICS_TOKEN), timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return parse(response.text)


def test_metrics_move_while_a_batch_runs(
    settings: Settings, redis: Redis, session_factory: Any, tmp_path: Path
) -> None:
    prefix = settings.queue_name
    sample_queue = f"{prefix}:sample:hf:canned-policy"
    with live_api(settings, api_key(session_factory)) as api:
        before = scrape(api.url)
        assert value(before, "findap_queue_depth", queue=f"{prefix}:train") == 0
        assert value(before, "findap_tokens_total") == 0

        with TestClient(create_app(settings), headers=bearer(api.key)) as client:
            submit(client, PROMPTS)  # three chunks of four prompts
        queued = scrape(api.url)
        assert value(queued, "findap_queue_depth", queue=sample_queue) == 3
        assert value(queued, "findap_batches", status="queued") == 1
        assert value(queued, "findap_chunks_in_flight") == 0

        worker = WorkerProcess(
            settings, tmp_path / "worker.log", policy_delay_s=1.0, judge_delay_s=0.3
        )
        try:
            during: list[Samples] = []

            def batch_done() -> bool:
                during.append(scrape(api.url))
                return value(during[-1], "findap_batches", status="completed") == 1

            wait_for(batch_done, timeout_s=90, what="the batch to complete", interval_s=0.1)
        finally:
            worker.stop()
        after = scrape(api.url)

    assert max(value(s, "findap_chunks_in_flight", stage="sample") for s in during) >= 1
    assert max(value(s, "findap_chunks_in_flight", stage="judge") for s in during) >= 1
    assert min(value(s, "findap_queue_depth", queue=sample_queue) for s in during) < 3
    policy_tokens = [
        value(s, "findap_tokens_total", role="policy", kind="completion") for s in during
    ]
    assert policy_tokens == sorted(policy_tokens), "a counter went down"
    assert any(0 < tokens < 24 * 12 for tokens in policy_tokens), "never seen mid-batch"
    stage_counts = [value(s, "findap_chunk_stage_seconds_count") for s in during]
    assert any(0 < count < 6 for count in stage_counts)
    assert max(value(s, "findap_tokens_per_second", role="policy") for s in during) > 0

    assert value(after, "findap_queue_depth", queue=sample_queue) == 0
    assert value(after, "findap_queue_depth", queue=f"{prefix}:judge:hf:canned-judge") == 0
    assert value(after, "findap_chunks_in_flight") == 0
    policy = {"engine": "hf", "model": "canned-policy", "role": "policy"}
    judge = {"engine": "hf", "model": "canned-judge"}
    assert value(after, "findap_tokens_total", kind="prompt", **policy) == 12 * 20
    assert value(after, "findap_tokens_total", kind="completion", **policy) == 24 * 12
    assert value(after, "findap_tokens_total", kind="completion", role="judge", **judge) == 36 * 30
    assert value(after, "findap_tokens_per_second", **policy) > 0
    assert value(after, "findap_judge_replies_total", kind="fap", **judge) == 24
    assert value(after, "findap_judge_replies_total", kind="scp", **judge) == 12
    assert value(after, "findap_judge_unparseable_replies_total", **judge) == 0
    assert value(after, "findap_judge_unparseable_ratio", kind="fap", **judge) == 0
    assert value(after, "findap_verdicts_total", outcome="parsed", **judge) == 36
    for stage, model in (("sample", "canned-policy"), ("judge", "canned-judge")):
        assert value(after, "findap_chunk_stage_seconds_count", stage=stage, model=model) == 3
        assert value(after, "findap_chunk_stage_seconds_sum", stage=stage) > 3 * 0.3
        assert value(after, "findap_chunk_stage_seconds_bucket", stage=stage, le="0.5") < 3
        assert value(after, "findap_chunk_stage_seconds_bucket", stage=stage, le="+Inf") == 3
    assert value(after, "findap_chunk_stage_runs_total", stage="sample", outcome="sampled") == 3
    assert value(after, "findap_chunk_stage_runs_total", stage="judge", outcome="succeeded") == 3
    assert value(after, "findap_batches", status="completed") == 1


def test_unparseable_judge_replies_are_counted_and_rated(
    client: TestClient,
    settings: Settings,
    canned: tuple[CannedPolicy, CannedJudge],  # noqa: F811
) -> None:
    _, judge = canned
    answer = judge.generate

    def first_call_garbled(
        conversations: list[list[Message]], params: SamplingParams
    ) -> list[Generation]:
        generations = answer(conversations, params)
        if len(judge.calls) > 1:
            return generations
        return [Generation(g.prompt_tokens, [Completion("no JSON here", 5)]) for g in generations]

    judge.generate = first_call_garbled  # type: ignore[method-assign]
    response = client.post("/v1/batches", json={"prompts": SMALL_BATCH[:2], **SMALL_BATCH_OPTIONS})
    assert response.status_code == 201, response.text
    serve_canned(settings)

    samples = parse(client.get("/metrics", headers=bearer(METRICS_TOKEN)).text)
    labels = {"engine": "hf", "model": "canned-judge"}
    # Four answers: the first FAP call does not parse, the retry does; two wrong ones get SCP.
    assert value(samples, "findap_judge_replies_total", kind="fap", **labels) == 8
    assert value(samples, "findap_judge_unparseable_replies_total", kind="fap", **labels) == 4
    assert value(samples, "findap_judge_unparseable_ratio", kind="fap", **labels) == 0.5
    assert value(samples, "findap_judge_unparseable_ratio", kind="scp", **labels) == 0
    assert value(samples, "findap_verdicts_total", kind="fap", outcome="parsed", **labels) == 4
    assert value(samples, "findap_tokens_total", role="judge", kind="completion") == 4 * 5 + 6 * 30


STEP_TIME_JOB_STEPS = 160


def test_training_step_time_is_exposed_while_and_after_a_job_trains(
    client: TestClient, settings: Settings, session_factory: Any, tiny_model_dir: Path
) -> None:
    sft = upload(client, "sft", sft_lines())
    created = create_job(
        client,
        method="sft",
        base_model=str(tiny_model_dir),
        data={"files": [sft]},
        hyperparameters={
            # Enough steps that a scrape every 50 ms sees the job running on a fast machine.
            "max_steps": STEP_TIME_JOB_STEPS,
            "batch_size": 2,
            "max_length": 64,
            "checkpoint_every": STEP_TIME_JOB_STEPS,
        },
    )
    seen: list[float] = []
    stop = threading.Event()
    with live_api(settings, api_key(session_factory)) as api:

        def watch() -> None:
            while not stop.is_set():
                gauge = value(scrape(api.url), "findap_training_last_step_seconds", method="sft")
                if gauge:
                    seen.append(gauge)
                time.sleep(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            run_training(settings)
        finally:
            stop.set()
            watcher.join()
        after = scrape(api.url)

    assert job(client, created["id"])["status"] == "succeeded"
    assert seen and all(seconds > 0 for seconds in seen)
    assert value(after, "findap_training_step_seconds_count") == STEP_TIME_JOB_STEPS
    assert value(after, "findap_training_step_seconds_sum") > 0
    assert value(after, "findap_training_last_step_seconds") == 0  # the job is not running
    assert value(after, "findap_training_jobs", status="succeeded") == 1


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), (bearer("wrong"), 403), (bearer("s3cret"), 200)],
)
def test_metrics_token_guards_metrics(
    settings: Settings, redis: Redis, headers: dict[str, str], status: int
) -> None:
    guarded = settings.model_copy(update={"metrics_token": SecretStr("s3cret")})
    with TestClient(create_app(guarded)) as anonymous:
        response = anonymous.get("/metrics", headers=headers)
    assert response.status_code == status, response.text
    if status == 401:
        assert response.json()["detail"] == (
            "missing metrics token: send Authorization: Bearer <METRICS_TOKEN>"
        )


def test_metrics_are_off_without_a_metrics_token(
    settings: Settings,
    redis: Redis,
    session_factory: Any,
) -> None:
    unset = settings.model_copy(update={"metrics_token": None})
    with TestClient(create_app(unset)) as anonymous:
        for headers in ({}, bearer("anything"), bearer(api_key(session_factory))):
            response = anonymous.get("/metrics", headers=headers)
            assert response.status_code == 403, response.text
            assert response.json()["detail"].startswith(
                "metrics are off: set METRICS_TOKEN on the API"
            )


def test_metrics_show_no_project_ids_only_models_stages_and_statuses(
    client: TestClient,
    settings: Settings,
    redis: Redis,
    session_factory: Any,
    canned: tuple[CannedPolicy, CannedJudge],  # noqa: F811
) -> None:
    owner = project_id(session_factory)
    with session_factory.begin() as session:
        done = TrainingJob(
            project_id=owner,
            method="sft",
            status="succeeded",
            base_model="canned-policy",
            output_model="canned-policy-sft-0123456789abcdef",
            data={"datasets": [], "files": []},
            hyperparameters={},
        )
        running = TrainingJob(
            project_id=owner,
            method="dpo",
            status="running",
            base_model="canned-policy",
            output_model="canned-policy-dpo-fedcba9876543210",
            data={"datasets": [], "files": []},
            hyperparameters={},
        )
        session.add_all([done, running])
        session.flush()
        # The trained model's weights are the canned policy's (the engine loads its path).
        trained = TrainedModel(
            id=done.output_model,
            project_id=owner,
            training_job_id=done.id,
            base_model="canned-policy",
            method="sft",
            path="canned-policy",
        )
        session.add(trained)
        ids = [owner, done.id, running.id, trained.id]
    store_of = MetricsStore(redis, settings.queue_name)
    figures = Figures()
    figures.set_latest(store.TRAINING_LAST_STEP, (ids[2],), 0.25)
    store_of.add(figures)
    options = {
        "policy": {"model": ids[3], "samples_per_prompt": 2},
        "judge": {"model": "canned-judge"},
    }
    created = client.post("/v1/batches", json={"prompts": SMALL_BATCH[:6], **options})
    assert created.status_code == 201, created.text
    queued = client.get("/metrics", headers=bearer(METRICS_TOKEN)).text
    serve(settings, policy=f"hf:{ids[3]}", judge="hf:canned-judge")
    after = client.get("/metrics", headers=bearer(METRICS_TOKEN)).text

    for exposition in (queued, after):
        for secret in (*ids, created.json()["id"], str(settings.data_dir)):
            assert secret not in exposition
    prefix = settings.queue_name
    assert value(parse(queued), "findap_queue_depth", queue=f"{prefix}:sample:hf:trained") == 2
    samples = parse(after)
    policy = {"engine": "hf", "model": "trained", "role": "policy"}
    assert value(samples, "findap_tokens_total", kind="completion", **policy) == 12 * 12
    assert value(samples, "findap_chunk_stage_seconds_count", stage="sample", model="trained") == 2
    assert value(samples, "findap_training_last_step_seconds", method="dpo") == 0.25


def test_redis_outage_loses_figures_without_failing_the_work(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    figures = Figures()
    figures.count(store.TOKENS, ("hf", "m", "policy", "completion"), 12)
    unreachable = Redis(port=1, socket_connect_timeout=0.2)
    MetricsStore(unreachable, settings.queue_name).add(figures)  # does not raise
    assert "metrics not recorded (Redis: Error 111" in caplog.text


def test_recent_tokens_spread_over_the_call_that_made_them(
    settings: Settings, redis: Redis
) -> None:
    metrics = MetricsStore(redis, settings.queue_name)
    now = time.time()
    figures = Figures()
    # 600 tokens over the last 30 s: all of them inside the window, 20 tokens/s over it.
    figures.count_recent(
        store.GENERATED_TOKENS, ("hf", "m", "policy"), 600, start=now - 30, end=now
    )
    # A call that ran for 10 minutes: only what falls in the window counts.
    figures.count_recent(
        store.GENERATED_TOKENS, ("hf", "long", "policy"), 6000, start=now - 600, end=now
    )
    metrics.add(figures)
    rates = metrics.recent_rates(store.GENERATED_TOKENS, now=now)
    window = now - (int((now - store.WINDOW_S) // store.SLOT_S) + 1) * store.SLOT_S
    assert rates[("hf", "m", "policy")] == pytest.approx(600 / window)
    assert rates[("hf", "long", "policy")] == pytest.approx(10, rel=0.01)
