"""Answers cut at max_tokens: stored as truncated, never judged, never paired, and counted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.kernel.batch_options import PolicyOptions
from app.kernel.config import Settings
from tests.workers.canned_engines import CUT, CannedJudge, CuttingPolicy
from tests.workers.test_pipeline import PROMPTS, pairs_of, serve, submit
from workers.engines import registry


@pytest.fixture
def cutting(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[CuttingPolicy, CannedJudge]]:
    """Serve cutting-policy and canned-judge from canned stand-ins."""
    policy, judge = CuttingPolicy(), CannedJudge()

    def factory(model: str, models_dir: Path, device: str, options):  # type: ignore[no-untyped-def]
        return {"cutting-policy": policy, "canned-judge": judge}[model]

    monkeypatch.setitem(registry.ENGINE_FACTORIES, "hf", factory)
    registry.clear_engine_cache()
    yield policy, judge
    registry.clear_engine_cache()


POLICY = {"model": "cutting-policy", "samples_per_prompt": 3, "max_tokens": 40}


def test_truncated_answer_gets_no_verdict_no_pair_and_a_note(
    client: TestClient, settings: Settings, cutting: tuple[CuttingPolicy, CannedJudge]
) -> None:
    batch_id = submit(client, PROMPTS[:2], policy=POLICY, judge={"engine": "rule"})
    serve(settings, policy="hf:cutting-policy")

    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["status"] == "completed"
    # Judged, the cut answer has no final line and would count as wrong: a second FAP pair
    # per question, built on an answer that was right as far as it went.
    assert batch["verdict_counts"]["fap"] == {
        "correct": 2,
        "wrong": 2,
        "unparseable": 0,
        "truncated": 2,
    }
    assert batch["pair_counts"]["fap"] == 2
    assert all(CUT not in p["rejected"][0]["content"] for p in pairs_of(client, batch_id))
    assert any(
        "2 answer(s) were cut at policy.max_tokens (40)" in note
        and "raise policy.max_tokens" in note
        for note in batch["notes"]
    )
    samples = client.get(f"/v1/batches/{batch_id}/samples").json()["data"]
    cut = [s for s in samples if s["text"] == CUT]
    assert len(cut) == 2
    assert {s["finish_reason"] for s in cut} == {"length"}
    assert {s["fap"]["outcome"] for s in cut} == {"truncated"}
    assert {s["fap"]["verdict"] for s in cut} == {None}
    assert {s["finish_reason"] for s in samples if s["text"] != CUT} == {"stop"}
    assert {s["source"] for s in samples} == {"policy"}
    filtered = client.get(f"/v1/batches/{batch_id}/samples", params={"verdict": "truncated"})
    assert [s["text"] for s in filtered.json()["data"]] == [CUT, CUT]


def test_truncated_answer_is_not_sent_to_the_llm_judge(
    client: TestClient, settings: Settings, cutting: tuple[CuttingPolicy, CannedJudge]
) -> None:
    _, judge = cutting
    batch_id = submit(client, PROMPTS[:1], policy=POLICY, judge={"model": "canned-judge"})
    serve(settings, policy="hf:cutting-policy", judge="hf:canned-judge")

    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["verdict_counts"]["fap"]["truncated"] == 1
    assert batch["verdict_counts"]["scp"]["parsed"] == 1  # the wrong answer only
    assert judge.calls == [2, 1]  # FAP of the two finished answers, SCP of the wrong one
    assert batch["pair_counts"] == {"fap": 1, "scp": 1, "total": 2}


def test_policy_max_tokens_defaults_to_1024() -> None:
    assert PolicyOptions().max_tokens == 1024


def test_truncation_benchmark_counts_the_answers_cut_at_the_limit(tiny_model_dir: Path) -> None:
    from benchmarks.truncation import truncated_share
    from workers.engines.hf import HFEngine

    engine = HFEngine(model_name="tiny", path=str(tiny_model_dir))
    questions = ["What is EPS?", "Define duration."]
    # Three tokens hold no EOS from a random model: all 2 x 6 answers are cut.
    assert truncated_share(engine, questions, 3) == (12, 12)


def test_smaller_limits_are_read_off_the_run_at_the_largest(tiny_model_dir: Path) -> None:
    from benchmarks.truncation import truncated_by_limit, truncated_share
    from workers.engines.hf import HFEngine

    engine = HFEngine(model_name="tiny", path=str(tiny_model_dir))
    questions = ["What is EPS?", "Define duration."]
    by_limit = truncated_by_limit(engine, questions, [4, 12])
    # Same seed, same calls: the run at 4 tokens is the first 4 tokens of the run at 12.
    assert by_limit[4] == truncated_share(engine, questions, 4)
    assert by_limit[12] == truncated_share(engine, questions, 12)
    assert by_limit[4][0] >= by_limit[12][0]
