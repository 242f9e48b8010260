"""benchmarks/rollouts.py runs (smoke size, on the tiny model) and prints its figures."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmarks import rollouts as rollouts_benchmark
from tests.tiny_model import make_replies_short


def test_rollouts_benchmark_prints_both_searches_and_their_agreement(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "short"
    shutil.copytree(tiny_model_dir, model)
    make_replies_short(model)

    rollouts_benchmark.main(
        model=str(model), questions=3, rollouts_per_step=2, verifier_kind="planted"
    )

    out = capsys.readouterr().out
    # The planted verifier is deterministic: both searches find every planted step.
    assert out.count("planted step found 3/3") == 2, out
    assert "same first wrong step where both labelled: 3/3" in out
    ratio = float(out.split("bisection / linear rollouts:")[1].split()[0])
    assert ratio > 0


def test_the_workload_is_fixed_by_its_seed() -> None:
    first = rollouts_benchmark.workload(12, seed=0)
    assert [p.answer.answer for p in first] == [
        p.answer.answer for p in rollouts_benchmark.workload(12, seed=0)
    ]
    assert all(6 <= len(p.answer.steps) <= 10 for p in first)
    assert all(
        p.answer.steps[p.wrong_step - 1].text.endswith(f"matches option {p.answer.answer[-1]}.")
        for p in first
    )
