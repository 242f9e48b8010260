"""The whole service on real Postgres and Redis: API -> queue -> worker -> pairs download."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text, update

from app.kernel.config import Settings
from app.kernel.context import ProcessContext
from app.kernel.models import Chunk, PreferencePair, Sample, Verdict
from app.kernel.models.statuses import ChunkStage, RunStatus
from tests.engines.test_openai_engine import Failure, FakeServer
from tests.workers.canned_engines import CORRECTION, RIGHT, WRONG, CannedJudge, CannedPolicy
from workers import chunk_store
from workers.engines import registry
from workers.engines.base import Completion
from workers.jobs import judge_and_pair, run_stage, sample_missing_answers
from workers.worker import run_worker

QUESTION = "What is 2 + 2?\nA. 5\nB. 4"
PROMPTS = [
    {"id": f"q{i}", "question": f"{QUESTION} (case {i})", "reference_answer": "B"} for i in range(6)
]


@pytest.fixture
def canned(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[CannedPolicy, CannedJudge]]:
    """Serve the model names canned-policy and canned-judge from canned stand-ins."""
    policy, judge = CannedPolicy(), CannedJudge()
    load_hf = registry.ENGINE_FACTORIES["hf"]

    def factory(model: str, models_dir: Path, device: str, options):  # type: ignore[no-untyped-def]
        return {"canned-policy": policy, "canned-judge": judge}.get(model) or load_hf(
            model, models_dir, device, options
        )

    monkeypatch.setitem(registry.ENGINE_FACTORIES, "hf", factory)
    registry.clear_engine_cache()
    yield policy, judge
    registry.clear_engine_cache()


def serve(settings: Settings, *, policy: str, judge: str | None = None) -> None:
    """Run a burst worker serving these models until their queues are empty."""
    update = {"policies": [policy], "judges": [judge] if judge else []}
    run_worker(settings.model_copy(update=update), burst=True)


def serve_canned(settings: Settings) -> None:
    serve(settings, policy="hf:canned-policy", judge="hf:canned-judge")


def submit(client: TestClient, prompts: list[dict], **options: object) -> str:
    response = client.post("/v1/batches", json={"prompts": prompts, **options})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def pairs_of(client: TestClient, batch_id: str) -> list[dict]:
    response = client.get(f"/v1/batches/{batch_id}/pairs", params={"format": "jsonl"})
    assert response.status_code == 200
    return [json.loads(line) for line in response.text.splitlines()]


CANNED_OPTIONS = {
    "policy": {"model": "canned-policy", "samples_per_prompt": 2},
    "judge": {"model": "canned-judge"},
}


def test_batch_with_llm_judge_makes_fap_and_scp_pairs(
    client: TestClient, settings: Settings, canned: tuple[CannedPolicy, CannedJudge]
) -> None:
    policy, judge = canned
    batch_id = submit(client, PROMPTS, **CANNED_OPTIONS)
    serve_canned(settings)

    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": 6, "completed": 6, "failed": 0}
    assert batch["sample_count"] == 12
    assert batch["verdict_counts"]["fap"] == {
        "correct": 6,
        "wrong": 6,
        "unparseable": 0,
        "truncated": 0,
    }
    assert batch["verdict_counts"]["scp"]["parsed"] == 6
    assert batch["pair_counts"] == {"fap": 6, "scp": 6, "total": 12}
    assert batch["usage"]["policy_completion_tokens"] == 12 * 12
    assert batch["usage"]["judge_completion_tokens"] == (12 + 6) * 30
    # One engine call per stage per chunk (chunk_size 4 -> 2 chunks), never one per prompt;
    # the worker finishes a sampled chunk (judge queue first) before sampling the next.
    assert policy.calls == [4, 2]
    assert judge.calls == [8, 4, 4, 2]  # FAP then SCP of chunk 1 (4 prompts), then of chunk 2

    pairs = pairs_of(client, batch_id)
    fap = [p for p in pairs if p["kind"] == "fap"]
    scp = [p for p in pairs if p["kind"] == "scp"]
    assert fap[0]["prompt"] == [{"role": "user", "content": PROMPTS[0]["question"]}]
    assert fap[0]["chosen"] == [{"role": "assistant", "content": RIGHT}]
    assert fap[0]["rejected"] == [{"role": "assistant", "content": WRONG}]
    assert scp[0]["chosen"] == [{"role": "assistant", "content": CORRECTION}]
    assert scp[0]["rejected"] == [{"role": "assistant", "content": "Step 1: 2 + 2 makes 5."}]
    assert PROMPTS[0]["question"] in scp[0]["prompt"][0]["content"]
    assert fap[0]["judge_prompt_version"] == "fap-v1"
    assert scp[0]["judge_prompt_version"] == "scp-steps-v1"
    assert fap[0]["policy_model"] == "canned-policy" and fap[0]["judge_model"] == "canned-judge"
    assert fap[0]["sampling"]["samples_per_prompt"] == 2
    assert {p["custom_id"] for p in pairs} == {p["id"] for p in PROMPTS}

    samples = client.get(f"/v1/batches/{batch_id}/samples", params={"limit": 5}).json()
    assert len(samples["data"]) == 5 and samples["has_more"]
    wrong = client.get(f"/v1/batches/{batch_id}/samples", params={"verdict": "wrong"}).json()
    assert len(wrong["data"]) == 6
    first = wrong["data"][0]
    assert first["fap"]["verdict"] == "wrong" and first["fap"]["outcome"] == "parsed"
    assert first["scp"]["wrong_step"] == "Step 1: 2 + 2 makes 5."
    assert first["scp"]["correction"] == CORRECTION
    assert first["scp"]["raw_output"].startswith("{")


class NoStepJudge(CannedJudge):
    """CannedJudge's verdicts; finds no wrong step in any wrong answer."""

    def generate(self, conversations, params):  # type: ignore[no-untyped-def]
        generations = super().generate(conversations, params)
        for generation in generations:
            reply = json.loads(generation.completions[0].text)
            if "first_wrong_step" in reply:
                reply |= {"first_wrong_step": None, "correction": ""}
                generation.completions[0] = Completion(json.dumps(reply), 30)
        return generations


def test_no_wrong_step_is_counted_and_makes_no_scp_pair(
    client: TestClient,
    settings: Settings,
    canned: tuple[CannedPolicy, CannedJudge],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    no_step = NoStepJudge()
    canned_factory = registry.ENGINE_FACTORIES["hf"]
    monkeypatch.setitem(
        registry.ENGINE_FACTORIES,
        "hf",
        lambda model, *args: no_step if model == "no-step-judge" else canned_factory(model, *args),
    )
    options = {**CANNED_OPTIONS, "judge": {"model": "no-step-judge"}}
    batch_id = submit(client, PROMPTS[:2], **options)
    serve(settings, policy="hf:canned-policy", judge="hf:no-step-judge")

    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["status"] == "completed", batch["error"]
    assert batch["verdict_counts"]["scp"] == {
        "parsed": 0,
        "no_step_error": 2,
        "unparseable": 0,
        "failed_validation": 0,
    }
    assert batch["pair_counts"] == {"fap": 2, "scp": 0, "total": 2}
    wrong = client.get(f"/v1/batches/{batch_id}/samples", params={"verdict": "wrong"}).json()
    assert [s["scp"]["outcome"] for s in wrong["data"]] == ["no_step_error"] * 2
    assert wrong["data"][0]["scp"]["wrong_step"] is None


def test_rule_judge_makes_fap_pairs_only_and_says_so(
    client: TestClient, settings: Settings, canned: tuple[CannedPolicy, CannedJudge]
) -> None:
    batch_id = submit(
        client, PROMPTS[:2], policy=CANNED_OPTIONS["policy"], judge={"engine": "rule"}
    )
    serve(settings, policy="hf:canned-policy")
    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["status"] == "completed"
    assert batch["pair_counts"] == {"fap": 2, "scp": 0, "total": 2}
    assert batch["verdict_counts"]["scp"] == {
        "parsed": 0,
        "no_step_error": 0,
        "unparseable": 0,
        "failed_validation": 0,
    }
    assert "no SCP pairs" in batch["notes"][0]
    assert pairs_of(client, batch_id)[0]["judge_prompt_version"] == "rule-v1"


def test_chunk_processed_twice_stores_each_sample_and_pair_once(
    process: ProcessContext,
    client: TestClient,
    settings: Settings,
    session_factory,
    canned,  # type: ignore[no-untyped-def]
) -> None:
    batch_id = submit(client, PROMPTS, **CANNED_OPTIONS)
    serve_canned(settings)

    def counts() -> tuple[int, int, int]:
        with session_factory() as session:
            return tuple(  # type: ignore[return-value]
                session.scalar(
                    select(func.count()).select_from(model).where(model.batch_id == batch_id)
                )
                for model in (Sample, Verdict, PreferencePair)
            )

    before = counts()
    assert before == (12, 18, 12)
    context = process
    with session_factory.begin() as session:
        chunk_ids = list(session.scalars(select(Chunk.id).where(Chunk.batch_id == batch_id)))
        # A second delivery of the same jobs, and a run that lost its verdicts half-way.
        session.execute(update(Chunk).values(status=RunStatus.QUEUED, stage=ChunkStage.SAMPLE))
        session.execute(text("DELETE FROM verdicts WHERE kind = 'scp'"))
    for chunk_id in chunk_ids:
        assert run_stage(context, chunk_id, ChunkStage.SAMPLE) == "sampled"
        assert run_stage(context, chunk_id, ChunkStage.JUDGE) == "succeeded"
    assert counts() == before
    # Already succeeded: a late duplicate job of either stage does nothing.
    assert run_stage(context, chunk_ids[0], ChunkStage.SAMPLE) == "skipped"
    assert run_stage(context, chunk_ids[0], ChunkStage.JUDGE) == "skipped"
    assert client.get(f"/v1/batches/{batch_id}").json()["status"] == "completed"


def test_cancel_while_a_chunk_runs_keeps_its_results(
    process: ProcessContext,
    client: TestClient,
    settings: Settings,
    session_factory,
    canned,  # type: ignore[no-untyped-def]
) -> None:
    batch_id = submit(client, PROMPTS, **CANNED_OPTIONS)
    context = process
    with session_factory.begin() as session:
        first_chunk = session.scalars(
            select(Chunk.id).where(Chunk.batch_id == batch_id).order_by(Chunk.index)
        ).first()
        work = chunk_store.claim_chunk(
            session,
            first_chunk,
            stage=ChunkStage.SAMPLE,
            worker_name="t",
            lease_s=60,
            max_attempts=3,
        )
    assert work is not None and len(work.prompts) == 4
    assert client.get(f"/v1/batches/{batch_id}").json()["status"] == "in_progress"

    cancelling = client.post(f"/v1/batches/{batch_id}/cancel").json()
    assert cancelling["status"] == "cancelling"
    assert cancelling["chunk_counts"]["cancelled"] == 1

    sampled = sample_missing_answers(context, work)
    assert sampled.policy_completion_tokens > 0
    stats = judge_and_pair(context, work)
    with session_factory.begin() as session:
        chunk_store.finish_chunk(session, first_chunk, stats=stats, error=None)
    serve_canned(settings)  # the cancelled chunk's job is skipped

    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["status"] == "cancelled"
    assert batch["request_counts"]["completed"] == 4
    assert batch["sample_count"] == 8
    assert batch["pair_counts"]["total"] == 8


def test_a_failing_model_fails_the_batch_with_the_reason(
    client: TestClient,
    settings: Settings,
    canned,  # type: ignore[no-untyped-def]
) -> None:
    batch_id = submit(
        client,
        PROMPTS[:2],
        policy={"model": "missing-model", "samples_per_prompt": 2},
        judge={"engine": "rule"},
    )
    serve(settings, policy="hf:missing-model")  # configured, but its folder is not there
    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["status"] == "failed"
    assert batch["request_counts"] == {"total": 2, "completed": 0, "failed": 2}
    assert batch["error"]
    assert batch["failed_at"] is not None


def test_a_judge_server_refusing_the_request_fails_the_chunk_at_once_with_its_message(
    client: TestClient,
    settings: Settings,
    session_factory,  # type: ignore[no-untyped-def]
    canned: tuple[CannedPolicy, CannedJudge],
) -> None:
    refusal = "Invalid schema for response_format 'reply': 'maxLength' is not permitted."
    server = FakeServer()
    server.start()
    try:
        server.state.always = Failure(400, refusal)
        batch_id = submit(
            client,
            PROMPTS[:2],
            policy=CANNED_OPTIONS["policy"],
            judge={"engine": "openai", "model": "gpt-judge"},
        )
        options = {"openai": {"base_url": server.base_url, "retry_backoff_s": 0.01}}
        serve(
            settings.model_copy(update={"engine_options": options}),
            policy="hf:canned-policy",
            judge="openai:gpt-judge",
        )
    finally:
        server.stop()
        registry.clear_engine_cache()

    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["status"] == "failed"
    assert "status 400" in batch["error"] and refusal in batch["error"]
    assert "not retried" in batch["error"]
    # The operator's model server is no tenant's business: its URL is not shown.
    assert "<model server>: status 400" in batch["error"]
    assert server.base_url not in batch["error"] and "127.0.0.1" not in batch["error"]
    # One judge call (4 answers, one request each), not one per chunk attempt.
    assert len(server.state.bodies) == 4
    with session_factory() as session:
        assert session.scalars(select(Chunk.attempts)).all() == [1]


def test_tiny_model_policy_with_rule_judge_runs_end_to_end(
    client: TestClient, settings: Settings, tiny_model_dir: Path
) -> None:
    registry.clear_engine_cache()
    batch_id = submit(
        client,
        PROMPTS[:5],
        policy={
            "model": str(tiny_model_dir),
            "samples_per_prompt": 3,
            "max_tokens": 24,
            "seed": 7,
        },
        judge={"engine": "rule"},
    )
    serve(settings, policy=f"hf:{tiny_model_dir}")
    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["status"] == "completed", batch["error"]
    assert batch["sample_count"] == 15
    fap = batch["verdict_counts"]["fap"]
    assert fap["correct"] + fap["wrong"] + fap["truncated"] == 15 and fap["unparseable"] == 0
    assert 0 < batch["usage"]["policy_completion_tokens"] <= 15 * 24
    samples = client.get(f"/v1/batches/{batch_id}/samples", params={"limit": 100}).json()["data"]
    assert len(samples) == 15
    # A random model rarely says EOS within 24 tokens: what ran to the limit is not judged.
    cut = [s for s in samples if s["finish_reason"] == "length"]
    assert fap["truncated"] == len(cut) > 0
    assert all(s["completion_tokens"] == 24 and s["fap"]["verdict"] is None for s in cut)
    assert all(s["fap"]["prompt_version"] == "rule-v1" for s in samples)
    assert {s["sample_index"] for s in samples} == {0, 1, 2}
    for pair in pairs_of(client, batch_id):
        assert pair["chosen"] != pair["rejected"]
