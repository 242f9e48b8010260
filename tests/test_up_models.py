"""What `findap up` serves and how processes started beside it find its embedded services."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from app import cli as app_cli
from app.cli import METRICS_TOKEN_FILE, print_metrics_access, with_metrics_token, with_models
from app.kernel.config import Settings
from app.launch import SERVICES_FILE, attached_settings, forget_services, record_services


def test_up_adds_named_models_to_the_default_policy_and_judge() -> None:
    settings = Settings(database_url=None, redis_url=None)
    served = with_models(settings, ["hf:my-model"], None, add_to_defaults=True)
    assert served.policies == ["hf:smollm2-135m-instruct", "hf:my-model"]
    assert served.judges == ["hf:smollm2-135m-instruct"]
    # `findap worker` serves only what it is given.
    assert with_models(settings, ["hf:my-model"], None).policies == ["hf:my-model"]
    assert with_models(settings, ["hf:my-model"], None).judges == []


def test_up_offers_tenants_the_models_its_operator_names_and_nothing_else(tmp_path: Path) -> None:
    folder = tmp_path / "my-model"
    settings = Settings(database_url=None, redis_url=None, base_models={"qwen": "/models/qwen"})
    served = with_models(settings, [f"hf:{folder}"], ["openai:gpt-4o"], add_to_defaults=True)
    # The registered default needs no entry; the operator's folder and remote model get one.
    assert served.base_models == {
        str(folder): str(folder),
        "gpt-4o": "gpt-4o",
        "qwen": "/models/qwen",
    }
    # `findap worker` offers nothing: the API's BASE_MODELS decide what a batch may name.
    assert with_models(settings, [f"hf:{folder}"], None).base_models == {"qwen": "/models/qwen"}


def test_up_makes_a_metrics_token_once_keeps_it_and_prints_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=None, redis_url=None)
    first = with_metrics_token(settings).metrics_token
    assert first is not None and len(first.get_secret_value()) >= 32
    token_file = tmp_path / "data" / METRICS_TOKEN_FILE
    assert token_file.stat().st_mode & 0o777 == 0o600
    again = with_metrics_token(settings).metrics_token
    assert again is not None and again.get_secret_value() == first.get_secret_value()

    monkeypatch.setattr(app_cli.console, "width", 30)  # printed whole, never wrapped
    print_metrics_access(with_metrics_token(settings), "http://127.0.0.1:8000")
    assert capsys.readouterr().out.splitlines() == [
        "metrics: http://127.0.0.1:8000/metrics  with  Authorization: Bearer "
        + first.get_secret_value()
    ]
    # A METRICS_TOKEN that is set wins; the file is neither read nor made.
    own = Settings(data_dir=tmp_path / "other", metrics_token=SecretStr("mine"))
    kept = with_metrics_token(own).metrics_token
    assert kept is not None and kept.get_secret_value() == "mine"
    assert not (tmp_path / "other").exists()


def test_a_worker_beside_up_joins_its_embedded_services(tmp_path: Path) -> None:
    up = Settings(
        data_dir=tmp_path, database_url="postgresql://up/db", redis_url="unix:///tmp/up.sock"
    )
    alone = Settings(data_dir=tmp_path, database_url=None, redis_url=None)
    assert attached_settings(alone).database_url is None  # no `findap up` there

    record_services(up)
    assert (tmp_path / SERVICES_FILE).stat().st_mode & 0o777 == 0o600
    joined = attached_settings(alone)
    assert joined.database_url == "postgresql+psycopg://up/db"
    assert joined.redis_url == "unix:///tmp/up.sock"
    # Set URLs win over the recorded ones.
    own = alone.model_copy(update={"redis_url": "redis://elsewhere:6379/0"})
    assert attached_settings(own).redis_url == "redis://elsewhere:6379/0"

    forget_services(up)
    assert not (tmp_path / SERVICES_FILE).exists()


def test_a_record_left_by_a_dead_up_is_ignored(tmp_path: Path) -> None:
    dead_pid = os.getpid()
    while True:  # a pid no process has
        dead_pid += 1000
        try:
            os.kill(dead_pid, 0)
        except ProcessLookupError:
            break
        except PermissionError:
            continue
    record = {"database_url": "postgresql://gone/db", "redis_url": "unix:///gone", "pid": dead_pid}
    (tmp_path / SERVICES_FILE).write_text(json.dumps(record))
    alone = Settings(data_dir=tmp_path, database_url=None, redis_url=None)
    assert attached_settings(alone).database_url is None
