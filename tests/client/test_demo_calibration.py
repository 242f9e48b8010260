"""What `findap demo` prints of its judge's calibration on the shipped gold set."""

from __future__ import annotations

from app import cli


def test_demo_prints_the_judges_calibration_with_its_notes() -> None:
    calibration = {
        "fap": {"n": 36, "accuracy": 1.0, "precision": 1.0, "recall": 1.0, "unparseable": 0},
        "scp": None,
        "notes": ["judge 'rule' checks final answers only: calibrated on the final-answer verdict"],
    }
    with cli.console.capture() as captured:
        cli.print_calibration(calibration)
    text = " ".join(captured.get().split())  # the console wraps long lines
    assert text == (
        "judge calibration on 36 gold answers: final answer accuracy 1.00, precision 1.00, "
        "recall 1.00 (of 'wrong') judge 'rule' checks final answers only: calibrated on the "
        "final-answer verdict"
    )


def test_demo_prints_the_step_figures_of_an_llm_judge() -> None:
    calibration = {
        "fap": {"n": 7, "accuracy": 5 / 7, "precision": None, "recall": 0.0, "unparseable": 7},
        "scp": {
            "wrong_n": 4,
            "wrong_accuracy": 0.25,
            "correct_n": 2,
            "correct_accuracy": 0.5,
            "f1": 1 / 3,
        },
        "notes": [],
    }
    with cli.console.capture() as captured:
        cli.print_calibration(calibration)
    text = " ".join(captured.get().split())
    assert "accuracy 0.71, precision n/a, recall 0.00" in text
    assert text.endswith(
        "first wrong step: 0.25 on wrong answers, 0.50 of correct ones left alone, F1 0.33"
    )


def test_demo_submits_the_shipped_gold_set() -> None:
    assert cli.GOLD_SET.name == "gold_finance.jsonl" and cli.GOLD_SET.exists()
    assert cli.DEMO_OPTIONS["judge"] is cli.DEMO_JUDGE
