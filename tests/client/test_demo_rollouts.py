"""`findap demo --scp rollouts`: the batch it asks for, and what it prints of the rollouts."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from app import cli


def test_demo_with_rollouts_asks_the_rule_judge_for_rollouts_on_its_questions(
    client: TestClient,
) -> None:
    options = cli.demo_options(cli.DemoScp.ROLLOUTS)
    assert options["judge"] == {"engine": "rule", "scp_method": "rollouts", "rollouts_per_step": 4}
    assert cli.demo_options(cli.DemoScp.JUDGE) is cli.DEMO_OPTIONS
    # Every demo question has a reference the rule can check continuations against.
    with cli.EXAMPLE_PROMPTS.open("rb") as prompts:
        response = client.post(
            "/v1/batches",
            files={"file": ("finance_mc.jsonl", prompts, "application/jsonl")},
            data={"options": json.dumps(options)},
        )
    assert response.status_code == 201, response.text
    assert response.json()["judge"]["scp_method"] == "rollouts"


def test_demo_says_what_the_rollouts_found_and_how_noisy_they_are() -> None:
    batch = {
        "rollouts": {
            "scp_method": "rollouts",
            "search": "bisection",
            "rollouts_per_step": 4,
            "answers_searched": 40,
            "labelled_answers": 6,
            "outcomes": {"parsed": 6, "no_step_error": 30, "undecided": 4},
            "prefixes_rolled_out": 150,
            "rollouts": 600,
            "rollouts_per_labelled_answer": 100.0,
            "rollout_tokens": 48000,
            "agreement": None,
        }
    }
    with cli.console.capture() as captured:
        cli.print_rollouts(batch)
    text = " ".join(captured.get().split())
    assert text.startswith(
        "rollouts: 6 of 40 wrong answers got a first wrong step (30 no_step_error, 6 parsed, "
        "4 undecided); 600 continuations, 100.0 per labelled answer, 48000 tokens"
    )
    assert "a guessed letter succeeds about 1 time in 3" in text
    assert "only when all 4 continuations after it fail" in text
    with cli.console.capture() as nothing:
        cli.print_rollouts({"rollouts": None})
    assert nothing.get() == ""
