"""The download benchmark and the load benchmark's round beside slow downloads run (smoke size)
and print their figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import download, load
from tests.live import free_port
from tests.test_benchmarks import service_environment  # noqa: F401


def test_download_benchmark_prints_rows_per_second_and_memory_of_both_formats(
    service_environment: None,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    download.main(rows=3000, port=free_port(), data_dir=tmp_path)
    out = capsys.readouterr().out
    for format in ("jsonl", "parquet"):
        line = next(line for line in out.splitlines() if line.startswith(format))
        assert "rows 3,000" in line
        assert float(line.split("rows/s ")[1].split()[0].replace(",", "")) > 0
        assert "API RSS before" in line and "peak" in line
        answers = next(line for line in out.splitlines() if line.startswith(f"samples-{format}"))
        assert "rows 1,500" in answers  # 2 answers per 4 pairs
        assert float(answers.split("rows/s ")[1].split()[0].replace(",", "")) > 0


def test_load_benchmark_beside_slow_downloads_prints_both_polling_p99s(
    service_environment: None,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    load.main(smoke=True, slow_downloads=4, port=free_port(), data_dir=tmp_path)
    out = capsys.readouterr().out
    assert "polling p99, beside 4 slow downloads:" in out and "goal < 100 ms" in out
    summary = out.split("polling p99 (ms): plain ")[1]
    assert float(summary.split()[0]) > 0
    assert float(summary.split("beside 4 slow downloads ")[1].split()[0]) > 0
    assert "slow download:" not in out  # no reader was refused
