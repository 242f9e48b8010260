"""A judge-only batch of gold-labelled answers reports the judge's calibration: checked against
figures computed by hand, for the rule judge, a scripted LLM judge and a real (tiny) hf judge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.kernel.config import Settings
from tests.workers.canned_engines import RIGHT, WRONG, CannedJudge, CannedPolicy
from tests.workers.test_given_answers import judge_only
from tests.workers.test_pipeline import QUESTION, canned, submit  # noqa: F401
from workers.engines import registry

GOLD_SET = Path(__file__).resolve().parents[2] / "app" / "examples" / "gold_finance.jsonl"
RIGHT_STEPS_WRONG_LETTER = "Step 1: 2 + 2 makes 4.\nStep 2: Option A is 4.\nAnswer: A"
MENTIONS_FIVE = "Step 1: 2 + 3 makes 5, which is not asked.\nStep 2: 2 + 2 makes 4.\nAnswer: B"

# CannedJudge calls an answer wrong iff it says "makes 5", and always names step 1.
ANSWERS = [
    {"text": RIGHT, "gold": {"correct": True}},  # fap ok; left without error: ok
    {"text": WRONG, "gold": {"correct": False, "first_wrong_step": 1}},  # fap ok; step ok
    {"text": WRONG, "gold": {"correct": False, "first_wrong_step": 2}},  # fap ok; step wrong
    {"text": WRONG, "gold": {"correct": False, "first_wrong_step": None}},  # fap ok; step wrong
    {"text": RIGHT_STEPS_WRONG_LETTER, "gold": {"correct": False, "first_wrong_step": 2}},  # both
    {"text": MENTIONS_FIVE, "gold": {"correct": True}},  # fap wrong; an error where none is
    {"text": WRONG, "gold": {"correct": False}},  # fap ok; step not labelled: not counted
]


def gold_batch(client: TestClient, judge: dict, prompts: list[dict] | None = None) -> str:
    prompts = prompts or [{"question": QUESTION, "reference_answer": "B", "answers": ANSWERS}]
    return submit(client, prompts, judge=judge)


def test_llm_judge_calibration_matches_the_figures_computed_by_hand(
    client: TestClient,
    settings: Settings,
    canned: tuple[CannedPolicy, CannedJudge],  # noqa: F811
) -> None:
    batch_id = gold_batch(client, {"model": "canned-judge"})
    judge_only(settings, "hf:canned-judge")

    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["status"] == "completed", batch["error"]
    # Gold wrong: answers 2, 3, 4, 5, 7; judged wrong: 2, 3, 4, 6, 7; both: 2, 3, 4, 7.
    assert batch["calibration"]["fap"] == {
        "n": 7,
        "accuracy": pytest.approx(5 / 7),
        "precision": pytest.approx(4 / 5),
        "recall": pytest.approx(4 / 5),
        "unparseable": 0,
    }
    # Steps on gold-wrong answers with a label: 2 right; 3, 4 (null: final line) and 5 not.
    # Gold-correct answers left without an error: 1 yes, 6 no. F1 = 2 * .25 * .5 / .75.
    assert batch["calibration"]["scp"] == {
        "wrong_n": 4,
        "wrong_accuracy": 0.25,
        "correct_n": 2,
        "correct_accuracy": 0.5,
        "f1": pytest.approx(1 / 3),
    }
    assert batch["calibration"]["notes"] == []
    samples = client.get(f"/v1/batches/{batch_id}/samples").json()["data"]
    assert [s["gold"] for s in samples] == [a["gold"] for a in ANSWERS]
    assert [(s["agrees"]["fap"], s["agrees"]["scp"]) for s in samples] == [
        (True, True),
        (True, True),
        (True, False),
        (True, False),
        (False, False),
        (False, False),
        (True, None),
    ]


def test_rule_judge_calibrates_final_answers_only_and_says_so(
    client: TestClient, settings: Settings
) -> None:
    batch_id = gold_batch(client, {"engine": "rule"})
    judge_only(settings, "rule:rule")

    calibration = client.get(f"/v1/batches/{batch_id}").json()["calibration"]
    # The rule verifier reads each final letter: every verdict matches gold.
    assert calibration["fap"] == {
        "n": 7,
        "accuracy": 1.0,
        "precision": 1.0,
        "recall": 1.0,
        "unparseable": 0,
    }
    assert calibration["scp"] is None
    assert "final answers only" in calibration["notes"][0]


def test_rule_judge_on_the_shipped_gold_set(client: TestClient, settings: Settings) -> None:
    prompts = [json.loads(line) for line in GOLD_SET.read_text().splitlines()]
    answers = [a for p in prompts for a in p["answers"]]
    assert len(answers) >= 30
    assert sum(a["gold"]["correct"] for a in answers) == 14
    assert sum(a["gold"].get("first_wrong_step", 0) is None for a in answers) == 5
    batch_id = gold_batch(client, {"engine": "rule"}, prompts)
    judge_only(settings, "rule:rule")

    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["calibration"]["fap"] == {
        "n": 36,
        "accuracy": 1.0,
        "precision": 1.0,
        "recall": 1.0,
        "unparseable": 0,
    }
    assert batch["pair_counts"]["fap"] == 22  # each of the 22 wrong answers, once


def test_hf_judge_calibration_agrees_with_its_own_decisions(
    client: TestClient, settings: Settings, tiny_model_dir: Path
) -> None:
    registry.clear_engine_cache()
    prompts = [json.loads(line) for line in GOLD_SET.read_text().splitlines()[:2]]
    batch_id = gold_batch(
        client, {"engine": "hf", "model": str(tiny_model_dir), "max_tokens": 64}, prompts
    )
    judge_only(settings, f"hf:{tiny_model_dir}")

    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["status"] == "completed", batch["error"]
    samples = client.get(f"/v1/batches/{batch_id}/samples").json()["data"]
    # Recount by hand from each answer's gold label and the judge's stored decisions.
    fap = batch["calibration"]["fap"]
    gold_wrong = [not s["gold"]["correct"] for s in samples]
    said_wrong = [s["fap"]["verdict"] == "wrong" for s in samples]
    both = sum(g and w for g, w in zip(gold_wrong, said_wrong, strict=True))
    assert fap["n"] == 6
    assert fap["accuracy"] == pytest.approx(
        sum(
            (s["fap"]["verdict"] == "correct") == s["gold"]["correct"]
            for s in samples
            if s["fap"]["verdict"] is not None
        )
        / 6
    )
    assert fap["recall"] == pytest.approx(both / sum(gold_wrong))
    assert fap["precision"] == (pytest.approx(both / sum(said_wrong)) if any(said_wrong) else None)
    assert fap["unparseable"] == sum(s["fap"]["verdict"] is None for s in samples)
    scp = batch["calibration"]["scp"]
    correct = [s for s in samples if s["gold"]["correct"]]
    assert scp["correct_n"] == len(correct) == 2
    assert scp["correct_accuracy"] == sum(s["fap"]["verdict"] == "correct" for s in correct) / 2
    measured = [s["agrees"]["scp"] for s in samples if not s["gold"]["correct"]]
    assert scp["wrong_n"] == len([m for m in measured if m is not None])


def test_a_null_gold_step_matches_a_judge_that_finds_no_wrong_step() -> None:
    from app.services.calibration import JudgedGold, calibrate

    final_line_only = {"correct": False, "first_wrong_step": None}
    items = [
        JudgedGold(final_line_only, "wrong", False, "no_step_error", None),  # match
        JudgedGold(final_line_only, "wrong", False, "parsed", 2),  # names a step: no match
        JudgedGold(
            {"correct": False, "first_wrong_step": 2}, "wrong", False, "no_step_error", None
        ),
        JudgedGold(
            {"correct": False, "first_wrong_step": 2}, "wrong", False, None, None
        ),  # pending
        JudgedGold({"correct": True}, None, False, None, None),  # unparseable: an error left
    ]
    calibration = calibrate(items)
    assert calibration is not None and calibration.scp is not None
    assert (calibration.scp.wrong_n, calibration.scp.wrong_accuracy) == (3, 1 / 3)
    assert (calibration.scp.correct_n, calibration.scp.correct_accuracy) == (1, 0.0)
    assert calibration.scp.f1 == 0.0
    assert calibration.fap.unparseable == 1 and calibration.fap.accuracy == 4 / 5
    without_analyses = calibrate(items, analysed=False)
    assert without_analyses is not None and without_analyses.scp is None
    assert without_analyses.notes == [
        "pairing.scp is off: the judge names no first wrong step, so no scp figures"
    ]
