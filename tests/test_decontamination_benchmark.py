"""The decontamination benchmark runs (smoke size), prints pairs/s and finds what it planted."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import decontamination
from tests.test_benchmarks import service_environment  # noqa: F401


def test_decontamination_benchmark_prints_pairs_per_second_and_finds_the_planted_pairs(
    service_environment: None,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    decontamination.main(pairs=2000, questions=100, database_pairs=400, seed=1, data_dir=tmp_path)
    out = capsys.readouterr().out
    assert "planted: 20 prompts with a 13-word span, 10 exact copies" in out
    memory = next(line for line in out.splitlines() if line.startswith("in memory:"))
    assert float(memory.split("pairs/s ")[1].split(";")[0].replace(",", "")) > 0
    assert memory.endswith("flagged 30")
    postgres = next(line for line in out.splitlines() if line.startswith("from Postgres:"))
    assert postgres.startswith("from Postgres: 400 pairs in")
    # 100 questions of 4 pairs each; every ninth question (0, 9, ..., 99) is in the eval set.
    assert "flagged 48, dropped 48 (planted: 12 questions)" in postgres
    upload = next(line for line in out.splitlines() if line.startswith("eval upload overlap:"))
    assert upload.startswith("eval upload overlap: 400 pairs of the project's datasets in")
    assert upload.endswith("matching 48, questions matching 12")
