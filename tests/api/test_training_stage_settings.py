"""The paper's stage settings through the API: per-method defaults stored on the job, AdamW betas
and early stopping validated with the field named, nothing stored on refusal."""

from __future__ import annotations

from fastapi.testclient import TestClient
from redis import Redis

from app.kernel.config import Settings
from tests.api.test_training_jobs import HUB_MODEL, create, file_id, train_queue


def test_stage_one_and_dpo_defaults_follow_table_g1(client: TestClient) -> None:
    cpt, sft, pref = file_id(client, "cpt"), file_id(client, "sft"), file_id(client, "preference")
    for method, files in [("cpt", [cpt]), ("sft", [sft]), ("cpt_sft", [cpt, sft])]:
        hyper = create(client, method=method, base_model=HUB_MODEL, data={"files": files})[
            "hyperparameters"
        ]
        assert hyper["learning_rate"] == 5e-6 and hyper["warmup_ratio"] == 0.1, method
        assert hyper["weight_decay"] == 0.1 and hyper["adam_beta2"] == 0.95, method
        assert hyper["adam_beta1"] == 0.9 and hyper["early_stopping"] is None, method
    dpo = create(
        client,
        method="dpo",
        base_model=HUB_MODEL,
        data={"files": [pref]},
        hyperparameters={"max_steps": 10},  # one pair: one step, all warmup, is refused
    )
    hyper = dpo["hyperparameters"]
    assert hyper["learning_rate"] == 5e-7 and hyper["warmup_ratio"] == 0.1
    assert hyper["weight_decay"] == 0.0 and hyper["adam_beta2"] == 0.999
    assert client.get(f"/v1/training-jobs/{dpo['id']}").json()["hyperparameters"] == hyper


def test_given_betas_weight_decay_and_early_stopping_are_kept(client: TestClient) -> None:
    job = create(
        client,
        method="sft",
        base_model=HUB_MODEL,
        data={"files": [file_id(client, "sft")]},
        hyperparameters={
            "adam_beta1": 0.85,
            "adam_beta2": 0.98,
            "weight_decay": 0.0,
            "eval_fraction": 0.1,
            "early_stopping": {"patience": 2, "min_delta": 0.01},
        },
    )
    hyper = job["hyperparameters"]
    assert (hyper["adam_beta1"], hyper["adam_beta2"], hyper["weight_decay"]) == (0.85, 0.98, 0.0)
    assert hyper["early_stopping"] == {"patience": 2, "min_delta": 0.01}


def test_bad_stage_settings_name_the_field_and_store_nothing(
    client: TestClient, redis: Redis, settings: Settings
) -> None:
    good = {"method": "sft", "base_model": HUB_MODEL, "data": {"files": [file_id(client, "sft")]}}
    cases = [
        ({"adam_beta1": 1.0}, "hyperparameters.adam_beta1: Input should be less than 1"),
        ({"adam_beta2": -0.1}, "hyperparameters.adam_beta2: Input should be greater than or equal"),
        ({"adam_beta2": 1}, "hyperparameters.adam_beta2: Input should be less than 1"),
        (
            {"early_stopping": {"patience": 3}},
            "hyperparameters.early_stopping: needs an eval split to watch; set "
            "hyperparameters.eval_fraction above 0",
        ),
        (
            {"eval_fraction": 0.1, "early_stopping": {"patience": 0}},
            "hyperparameters.early_stopping.patience: Input should be greater than or equal to 1",
        ),
        (
            {"eval_fraction": 0.1, "early_stopping": {}},
            "hyperparameters.early_stopping.patience: Field required",
        ),
        (
            {"eval_fraction": 0.1, "early_stopping": 3},
            "hyperparameters.early_stopping: Input should be a valid dictionary",
        ),
    ]
    for hyperparameters, message in cases:
        response = client.post(
            "/v1/training-jobs", json={**good, "hyperparameters": hyperparameters}
        )
        assert response.status_code == 422, (hyperparameters, response.text)
        assert response.json()["detail"].startswith(message), response.json()["detail"]
    assert client.get("/v1/training-jobs").json()["data"] == []
    assert train_queue(redis, settings).count == 0
