"""Before and after on a training job, end to end: the tiny model is instruction-tuned on
questions whose answer follows a keyword of the question, and the job's evaluation runs the
base model and the trained one on held-out questions of the same kind through the evaluations
API (real workers, the rule verifier)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.kernel.config import Settings
from tests.training.jobs import create_job, job, run_training, upload
from workers.prompts.direct import build_direct_messages
from workers.worker import run_worker

NAMES = [
    "Acme", "Borel", "Cato", "Dune", "Eyre", "Fenn", "Gale", "Hart", "Ives", "Jura",
    "Kent", "Lund", "Mott", "Nash", "Orr", "Pike", "Quay", "Rhee", "Sato", "Tate",
]  # fmt: skip
HELD_OUT = NAMES[16:]
"""Names no training question uses: the model must read the keyword, not remember the name."""
THINGS = ["dividend", "price", "budget", "forecast"]


def direction(name: str, thing: str, up: bool) -> tuple[str, str]:
    verb = "raised" if up else "cut"
    question = f"{name} {verb} its {thing}. Did the {thing} go up or down?\nA. up\nB. down"
    return question, "A" if up else "B"


def sign(name: str, amount: int, profit: bool) -> tuple[str, str]:
    result = "profit" if profit else "loss"
    question = (
        f"{name} reported a {result} of ${amount} million. Was the result positive or "
        "negative?\nA. positive\nB. negative"
    )
    return question, "A" if profit else "B"


def questions(names: list[str], rng: random.Random) -> list[tuple[str, str, str]]:
    """(task, question, answer): both answers of both tasks for every name."""
    made = []
    for name in names:
        for flag in (True, False):
            made.append(("direction", *direction(name, rng.choice(THINGS), flag)))
            made.append(("sign", *sign(name, rng.randint(2, 99), flag)))
    return made


def sft_lines(rows: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """In the direct evaluation's own prompt, so the tuned model answers in its format."""
    return [
        {
            "messages": [
                *build_direct_messages(question),
                {"role": "assistant", "content": f"Answer: {answer}"},
            ]
        }
        for _, question, answer in rows
    ]


def eval_lines(rows: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    return [
        {"id": f"q{i}", "question": q, "reference_answer": a, "metadata": {"task": task}}
        for i, (task, q, a) in enumerate(rows)
    ]


def evaluate_with(settings: Settings, model: str) -> None:
    """A burst worker serving `model` until its queue is empty."""
    run_worker(settings.model_copy(update={"policies": [f"hf:{model}"], "judges": []}), burst=True)


def test_tuned_model_beats_its_base_on_held_out_questions(
    client: TestClient, settings: Settings, tiny_model_dir: Path
) -> None:
    rng = random.Random(11)
    train_rows = questions(NAMES[:16], rng)
    held_out = questions(HELD_OUT, rng)
    assert not {q for _, q, _ in train_rows} & {q for _, q, _ in held_out}
    sft = upload(client, "sft", sft_lines(train_rows))
    eval_file = upload(client, "eval", eval_lines(held_out))

    created = create_job(
        client,
        method="sft",
        base_model=str(tiny_model_dir),
        data={"files": [sft]},
        hyperparameters={
            "max_steps": 90,
            "batch_size": 8,
            "learning_rate": 5e-3,
            "warmup_ratio": 0.0,
            "max_length": 512,
            "seed": 5,
        },
        evaluation={
            "file_id": eval_file,
            "mode": "direct",
            "max_tokens": 16,
            "judge": {"model": "rule"},
        },
    )
    evaluate_with(settings, str(tiny_model_dir))  # the before-run, while the job waits
    run_training(settings)
    trained = job(client, created["id"])
    assert trained["status"] == "succeeded", trained["error"]
    evaluate_with(settings, trained["output_model"])  # the after-run, released by the trainer

    shown = job(client, created["id"])["evaluation"]
    before_id, after_id = shown["before"]["id"], shown["after"]["id"]
    before = client.get(f"/v1/evaluations/{before_id}").json()
    after = client.get(f"/v1/evaluations/{after_id}").json()
    assert before["status"] == after["status"] == "completed"
    assert before["model"] == str(tiny_model_dir) and after["model"] == trained["output_model"]
    assert before["questions"] == after["questions"] == len(held_out)
    print(
        "before", json.dumps(before["accuracy"]), json.dumps(before["by_task"]),
        "\nafter", json.dumps(after["accuracy"]), json.dumps(after["by_task"]),
    )  # fmt: skip
    # measured: before 0/16 [0.00, 0.19] (all truncated), after 15/16 [0.72, 0.99]
    assert after["accuracy"]["value"] > before["accuracy"]["value"]
    # The intervals are apart: not a lucky draw of 16 questions.
    assert after["accuracy"]["low"] > before["accuracy"]["high"]
    assert shown["delta"]["overall"] == after["accuracy"]["value"] - before["accuracy"]["value"]
    assert set(shown["delta"]["by_task"]) == {"direction", "sign"}
