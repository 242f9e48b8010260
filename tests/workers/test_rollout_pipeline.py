"""scp_method rollouts and consensus through the service: API -> queue -> worker -> pairs, on
real Postgres and Redis. The policy here is a canned stand-in that finishes step prefixes the
way a policy that knows 2 + 2 would (the code around the model is under test; the engines'
continuation is tested on real models in test_rollouts.py and the SmolLM2 test)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from sqlalchemy import delete, func, select, update

from app.kernel.config import Settings
from app.kernel.context import ProcessContext
from app.kernel.models import Chunk, PrefixRollout, Verdict
from app.kernel.models.statuses import ROLLOUT_VERDICT, ChunkStage, RunStatus
from app.kernel.progress import read_progress
from tests.workers.canned_engines import CORRECTION, RIGHT, WRONG, CannedJudge, CannedPolicy
from tests.workers.test_pipeline import PROMPTS, pairs_of, serve, submit
from workers.engines import registry
from workers.engines.base import Completion, Generation, Message, SamplingParams
from workers.jobs import run_stage


class ContinuingPolicy(CannedPolicy):
    """Answers like CannedPolicy (right, wrong, right, ...); a step prefix it finishes the
    way a policy would: from "2 + 2 makes 5" it can only reach A, otherwise it reaches B."""

    model_name = "continuing-policy"

    def __init__(self) -> None:
        super().__init__()
        self.rollout_calls: list[int] = []
        self.on_rollout: Callable[[], None] | None = None
        """Called at each rollout round's engine call (tests read the chunk's progress)."""

    def generate(
        self, conversations: list[list[Message]], params: SamplingParams
    ) -> list[Generation]:
        if conversations[0][-1]["role"] != "assistant" and params.n != 8:
            return super().generate(conversations, params)
        self.rollout_calls.append(len(conversations))
        if self.on_rollout is not None:
            self.on_rollout()
        generations = []
        for conversation in conversations:
            last = conversation[-1]
            if last["role"] != "assistant":
                texts = [RIGHT if i % 2 == 0 else WRONG for i in range(params.n)]
            elif "makes 5" in last["content"]:
                texts = ["Step 2: Option A is 5.\nAnswer: A"] * params.n
            else:
                texts = ["Step 2: Option B is 4.\nAnswer: B"] * params.n
            generations.append(
                Generation(prompt_tokens=40, completions=[Completion(t, 10) for t in texts])
            )
        return generations


class OtherStepJudge(CannedJudge):
    """Names step 2 as the first wrong step on the questions of case 1, else step 1."""

    model_name = "other-step-judge"

    def generate(
        self, conversations: list[list[Message]], params: SamplingParams
    ) -> list[Generation]:
        generations = super().generate(conversations, params)
        for conversation, generation in zip(conversations, generations, strict=True):
            reply = json.loads(generation.completions[0].text)
            if "first_wrong_step" in reply and "(case 1)" in conversation[-1]["content"]:
                reply["first_wrong_step"] = 2
                generation.completions[0] = Completion(json.dumps(reply), 30)
        return generations


@pytest.fixture
def engines(monkeypatch: pytest.MonkeyPatch) -> Iterator[ContinuingPolicy]:
    policy, judge, other = ContinuingPolicy(), CannedJudge(), OtherStepJudge()
    load_hf = registry.ENGINE_FACTORIES["hf"]
    served = {"continuing-policy": policy, "canned-judge": judge, "other-step-judge": other}

    def factory(model: str, models_dir: Path, device: str, options):  # type: ignore[no-untyped-def]
        return served.get(model) or load_hf(model, models_dir, device, options)

    monkeypatch.setitem(registry.ENGINE_FACTORIES, "hf", factory)
    registry.clear_engine_cache()
    yield policy
    registry.clear_engine_cache()


POLICY = {"model": "continuing-policy", "samples_per_prompt": 2}


def test_rollouts_with_the_rule_judge_make_on_policy_scp_pairs(
    client: TestClient, settings: Settings, engines: ContinuingPolicy
) -> None:
    judge = {"engine": "rule", "scp_method": "rollouts", "rollouts_per_step": 8}
    batch_id = submit(client, PROMPTS, policy=POLICY, judge=judge, chunk_size=6)
    serve(settings, policy="hf:continuing-policy")

    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["status"] == "completed", batch["error"]
    assert batch["verdict_counts"]["rollout"] == {"parsed": 6}
    assert batch["pair_counts"] == {"fap": 6, "scp": 6, "total": 12}
    assert not any("no SCP pairs" in note for note in batch["notes"])
    # Bisection on 2-step answers: the question alone (half succeed), then step 1 (none).
    assert engines.rollout_calls == [6, 6]
    report = batch["rollouts"]
    assert report["search"] == "bisection" and report["rollouts_per_step"] == 8
    assert report["labelled_answers"] == 6 and report["rollouts"] == 6 * 2 * 8
    assert report["rollouts_per_labelled_answer"] == 16.0
    assert report["rollout_tokens"] == 6 * 2 * (40 + 8 * 10)
    assert batch["usage"]["rollout_completion_tokens"] == 6 * 2 * 8 * 10
    assert report["agreement"] is None

    scp = [p for p in pairs_of(client, batch_id) if p["kind"] == "scp"]
    assert scp[0]["chosen"] == [{"role": "assistant", "content": CORRECTION}]
    assert scp[0]["rejected"] == [{"role": "assistant", "content": "Step 1: 2 + 2 makes 5."}]
    assert scp[0]["scp_method"] == "rollouts"
    assert scp[0]["judge_prompt_version"] == "rule-v1"
    assert scp[0]["rollouts"]["first_wrong_step"] == 1
    assert scp[0]["rollouts"]["estimates"] == {
        "0": {"rollouts": 8, "successes": 4, "unknown": 0},
        "1": {"rollouts": 8, "successes": 0, "unknown": 0},
    }


def test_each_rollout_round_moves_the_chunk_s_progress(
    client: TestClient, settings: Settings, redis: Redis, engines: ContinuingPolicy
) -> None:
    """With the rule judge, rollouts are the chunk's only model calls after sampling: the
    progress shows them as the second of two phases, a round (of at most 1 + 2 for bisection
    on 2-step answers) at a time, and rollout continuations are not counted as answers."""
    judge = {"engine": "rule", "scp_method": "rollouts", "rollouts_per_step": 8}
    batch_id = submit(client, PROMPTS, policy=POLICY, judge=judge, chunk_size=6)
    seen: list[tuple[float, int, int]] = []

    def read() -> None:
        [figures] = read_progress(redis, settings.queue_name, batch_id)
        seen.append((figures.fraction, figures.samples, figures.judged))

    engines.on_rollout = read
    serve(settings, policy="hf:continuing-policy")
    assert client.get(f"/v1/batches/{batch_id}").json()["status"] == "completed"
    # Round 1 of at most 3 starts half way (sampling done), round 2 a third further on.
    assert [fraction for fraction, _, _ in seen] == [0.5, pytest.approx(0.5 + 0.5 / 3, abs=1e-3)]
    assert all(judged == 0 for _, _, judged in seen)


def test_linear_search_finds_the_same_step(
    client: TestClient, settings: Settings, engines: ContinuingPolicy
) -> None:
    judge = {"engine": "rule", "scp_method": "rollouts", "rollout_search": "linear"}
    batch_id = submit(client, PROMPTS[:2], policy=POLICY, judge=judge)
    serve(settings, policy="hf:continuing-policy")
    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["rollouts"]["search"] == "linear"
    assert batch["verdict_counts"]["rollout"] == {"parsed": 2}
    assert batch["pair_counts"]["scp"] == 2


def test_consensus_keeps_only_the_pairs_judge_and_rollouts_agree_on(
    client: TestClient, settings: Settings, engines: ContinuingPolicy
) -> None:
    judge = {"model": "other-step-judge", "scp_method": "consensus"}
    batch_id = submit(client, PROMPTS, policy=POLICY, judge=judge)
    serve(settings, policy="hf:continuing-policy", judge="hf:other-step-judge")

    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["status"] == "completed", batch["error"]
    assert batch["verdict_counts"]["scp"]["parsed"] == 6
    assert batch["verdict_counts"]["rollout"] == {"parsed": 6}
    # Case 1: the judge says step 2, the rollouts step 1: counted, and no pair.
    assert batch["rollouts"]["agreement"] == {
        "compared": 6,
        "agree": 5,
        "disagree": 1,
        "rate": round(5 / 6, 4),
    }
    assert batch["pair_counts"]["scp"] == 5
    scp = [p for p in pairs_of(client, batch_id) if p["kind"] == "scp"]
    assert "(case 1)" not in json.dumps([p["prompt"] for p in scp])
    assert {p["scp_method"] for p in scp} == {"consensus"}
    assert scp[0]["judge_prompt_version"] == "scp-steps-v1"

    shown = client.get(f"/v1/batches/{batch_id}/samples", params={"agreement": "disagree"})
    [disagreeing] = shown.json()["data"]
    assert "(case 1)" in disagreeing["question"]
    assert disagreeing["judge_rollout_agreement"] == "disagree"
    assert disagreeing["scp"]["wrong_step_number"] == 2
    assert disagreeing["rollout"]["wrong_step_number"] == 1
    assert [e["success_rate"] for e in disagreeing["prefix_estimates"]] == [0.5, 0.0]
    agreeing = client.get(f"/v1/batches/{batch_id}/samples", params={"agreement": "agree"})
    assert len(agreeing.json()["data"]) == 5
    # Step labels too: the disagreeing answer has none.
    prm = client.get(f"/v1/batches/{batch_id}/pairs", params={"format": "prm"}).text
    labelled = [json.loads(line) for line in prm.splitlines()]
    assert len([r for r in labelled if r["label_source"] == "consensus"]) == 5
    assert disagreeing["id"] not in {r["sample_id"] for r in labelled}


def test_a_chunk_killed_mid_rollout_redoes_only_what_is_not_stored(
    process: ProcessContext,
    client: TestClient,
    settings: Settings,
    session_factory,  # type: ignore[no-untyped-def]
    engines: ContinuingPolicy,
) -> None:
    judge = {"engine": "rule", "scp_method": "rollouts"}
    batch_id = submit(client, PROMPTS[:4], policy=POLICY, judge=judge, chunk_size=4)
    serve(settings, policy="hf:continuing-policy")
    with session_factory.begin() as session:
        before = session.scalar(select(func.count()).select_from(PrefixRollout))
        # Killed after the first round was stored: its second round and verdicts are lost.
        session.execute(delete(PrefixRollout).where(PrefixRollout.prefix_steps > 0))
        session.execute(delete(Verdict).where(Verdict.kind == ROLLOUT_VERDICT))
        session.execute(update(Chunk).values(status=RunStatus.QUEUED, stage=ChunkStage.SAMPLE))
        chunk_id = session.scalar(select(Chunk.id).where(Chunk.batch_id == batch_id))
    engines.rollout_calls.clear()

    assert run_stage(process, chunk_id, ChunkStage.SAMPLE) == "succeeded"

    assert engines.rollout_calls == [4]  # only step 1's prefixes, the round not stored
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(PrefixRollout)) == before
    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["verdict_counts"]["rollout"] == {"parsed": 4}
    assert batch["pair_counts"]["scp"] == 4


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"judge": {"engine": "rule", "scp_method": "rollouts", "rollouts_per_step": 0}},
            "rollouts_per_step",
        ),
        (
            {"judge": {"engine": "rule", "scp_method": "rollouts", "rollouts_per_step": 65}},
            "rollouts_per_step",
        ),
        (
            {"judge": {"engine": "rule", "scp_method": "consensus"}},
            "judge.scp_method: 'consensus' compares the judge's first-error analysis",
        ),
    ],
)
def test_rollout_options_that_cannot_run_are_refused(
    client: TestClient, options: dict, message: str
) -> None:
    response = client.post("/v1/batches", json={"prompts": PROMPTS[:1], **options})
    assert response.status_code == 422
    assert message in response.text


def test_rollouts_need_a_policy_for_given_answers(client: TestClient) -> None:
    prompts = [{**PROMPTS[0], "answers": [WRONG]}]
    judge = {"engine": "rule", "scp_method": "rollouts"}
    response = client.post("/v1/batches", json={"prompts": prompts, "judge": judge})
    assert response.status_code == 422
    assert "judge.scp_method: 'rollouts' needs a policy" in response.json()["detail"]
    with_policy = {"prompts": prompts, "judge": judge, "policy": POLICY}
    assert client.post("/v1/batches", json=with_policy).status_code == 201


def test_rollouts_with_the_rule_judge_need_a_reference_it_can_check(client: TestClient) -> None:
    prompts = [PROMPTS[0], {"question": "Why do bonds fall?", "reference_answer": "Rates rose."}]
    judge = {"engine": "rule", "scp_method": "rollouts"}
    response = client.post("/v1/batches", json={"prompts": prompts, "judge": judge})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("prompts[1].reference_answer: judge.scp_method 'rollouts'")
    assert "states neither" in detail


def test_prm_export_loads_with_datasets_and_has_one_label_per_step(
    client: TestClient, settings: Settings, engines: ContinuingPolicy, tmp_path: Path
) -> None:
    from datasets import load_dataset

    judge = {"engine": "rule", "scp_method": "rollouts"}
    batch_id = submit(client, PROMPTS[:3], policy=POLICY, judge=judge)
    serve(settings, policy="hf:continuing-policy")

    response = client.get(f"/v1/batches/{batch_id}/pairs", params={"format": "prm"})
    assert response.status_code == 200
    path = tmp_path / "prm.jsonl"
    path.write_bytes(response.content)
    rows = load_dataset("json", data_files=str(path), split="train")

    assert len(rows) == 6  # every judged answer: 3 correct, 3 wrong with a located step
    assert {"prompt", "completions", "labels"} <= set(rows.column_names)
    assert all(len(r["completions"]) == len(r["labels"]) for r in rows)
    correct = [r for r in rows if r["label_source"] == "final_answer"]
    wrong = [r for r in rows if r["label_source"] == "rollouts"]
    assert correct[0]["completions"] == ["2 + 2 makes 4.", "Option B is 4."]
    assert correct[0]["labels"] == [True, True]
    # Wrong at step 1: false there, the later steps dropped.
    assert [(r["completions"], r["labels"]) for r in wrong] == [(["2 + 2 makes 5."], [False])] * 3
    assert correct[0]["prompt"] == PROMPTS[0]["question"]

    dataset = client.post("/v1/datasets", json={"name": "steps", "batch_ids": [batch_id]}).json()
    frozen = client.get(f"/v1/datasets/{dataset['id']}/download", params={"format": "prm"})
    assert frozen.status_code == 200
    assert sorted(json.loads(line)["sample_id"] for line in frozen.text.splitlines()) == sorted(
        rows["sample_id"]
    )
