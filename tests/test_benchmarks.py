"""The benchmarks run (smoke size) and print their figures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.kernel.config import Settings, get_settings
from benchmarks import evaluation as evaluation_benchmark
from benchmarks import load, throughput
from benchmarks import training as training_benchmark
from tests.live import free_port


@pytest.fixture
def service_environment(
    settings: Settings,
    redis,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[None]:
    """The benchmarks read their settings from the environment: point it at the test services."""
    monkeypatch.setenv("DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("REDIS_URL", settings.redis_url or "")
    monkeypatch.setenv("QUEUE_NAME", settings.queue_name)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_throughput_benchmark_smoke_prints_both_runs_and_the_ratio(
    service_environment: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    throughput.main(smoke=True, port=free_port(), data_dir=tmp_path)
    out = capsys.readouterr().out
    assert "engine alone" in out and "whole service" in out
    ratio = float(out.split("ratio service/engine (tok/s):")[1].split()[0])
    assert ratio > 0
    assert "unparseable FAP replies, structured output:" in out


def test_training_benchmark_smoke_prints_both_runs_and_the_ratios(
    service_environment: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    training_benchmark.main(smoke=True, port=free_port(), data_dir=tmp_path)
    out = capsys.readouterr().out
    assert "service" in out and "TRL alone" in out
    for method in ("sft", "dpo"):
        line = out.split(f"ratio service/TRL, {method} (steps/s):")[1].splitlines()[0]
        steps_ratio = float(line.split()[0])
        tokens_ratio = float(line.split("(tokens/s):")[1].split()[0])
        assert steps_ratio > 0 and tokens_ratio > 0
    assert "service overhead, sft (job wall - train_runtime):" in out


def test_load_benchmark_smoke_prints_latencies_and_no_errors(
    service_environment: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    load.main(smoke=True, port=free_port(), data_dir=tmp_path)
    out = capsys.readouterr().out
    for operation in ("create", "poll", "list", "download"):
        assert operation in out
    assert float(out.split("requests/s:")[1].split()[0]) > 0
    assert int(out.split("batches completed and downloaded:")[1].split()[0]) > 0
    assert "errors: 0\n" in out
    assert "polling p99:" in out and "goal < 50 ms" in out


def test_evaluation_benchmark_smoke_prints_both_runs_and_the_ratio(
    service_environment: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    evaluation_benchmark.main(smoke=True, port=free_port(), data_dir=tmp_path)
    out = capsys.readouterr().out
    assert "engine alone" in out and "whole service" in out
    assert float(out.split("ratio service/engine (questions/s):")[1].split()[0]) > 0
    assert float(out.split("ratio service/engine (tok/s):")[1].split()[0]) > 0
