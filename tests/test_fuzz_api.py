"""Schemathesis fuzzes every operation of a live server (uvicorn, real Postgres and Redis):
no 5xx, and every response's status code, content type and body as the OpenAPI schema says.

Positive and negative cases of each operation come from Schemathesis's strategies, run by
Hypothesis here: its pytest plugin (`schema.parametrize()`) does not run under pytest 9.2, which
removed the `Node._nodeid` it rewrites.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from hypothesis import strategies as st
from pydantic import SecretStr
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.kernel.config import Settings
from app.launch import api_in_thread, bearer
from tests.api.test_training_jobs import HUB_MODEL, LINES
from tests.conftest import api_key
from tests.live import free_port
from tests.workers.test_pipeline import (  # noqa: F401
    CANNED_OPTIONS,
    PROMPTS,
    canned,
    serve_canned,
)

ADMIN_TOKEN = "fuzz-admin-token"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Bounded and reproducible: the same cases on every run, under a minute on 2 CPU cores.
MAX_EXAMPLES = 50


@dataclass(frozen=True)
class LiveApi:
    url: str
    key: str
    ids: dict[str, list[str]]  # path parameter -> ids that name something real


def seed(client: httpx.Client, settings: Settings) -> dict[str, list[str]]:
    """Something behind every kind of id: a finished batch with pairs, a queued rule-judge batch,
    a dataset, training files, a queued training job, a spare API key."""
    finished = client.post("/v1/batches", json={"prompts": PROMPTS, **CANNED_OPTIONS})
    finished.raise_for_status()
    serve_canned(settings)
    queued = client.post(
        "/v1/batches",
        json={"prompts": PROMPTS[:2], "judge": {"engine": "rule"}},
    )
    queued.raise_for_status()
    dataset = client.post(
        "/v1/datasets", json={"name": "fuzz", "batch_ids": [finished.json()["id"]]}
    )
    dataset.raise_for_status()
    files = {}
    for purpose in ("cpt", "sft"):
        body = "\n".join(json.dumps(line) for line in LINES[purpose])
        uploaded = client.post(
            "/v1/files",
            files={"file": (f"{purpose}.jsonl", body.encode(), "application/jsonl")},
            data={"purpose": purpose},
        )
        uploaded.raise_for_status()
        files[purpose] = uploaded.json()["id"]
    job = client.post(
        "/v1/training-jobs",
        json={"method": "cpt", "base_model": HUB_MODEL, "data": {"files": [files["cpt"]]}},
    )
    job.raise_for_status()
    spare_key = client.post(
        "/v1/admin/keys",
        json={"project": "fuzz-spare", "name": "revoke me"},
        headers=bearer(ADMIN_TOKEN),
    )
    spare_key.raise_for_status()
    return {
        "batch_id": [finished.json()["id"], queued.json()["id"]],
        "dataset_id": [dataset.json()["id"]],
        "file_id": list(files.values()),
        "job_id": [job.json()["id"]],
        "key_id": [spare_key.json()["id"]],
        "model_id": [settings.default_policy_model],
    }


@pytest.fixture
def live_api(
    settings: Settings,
    redis,  # type: ignore[no-untyped-def]
    session_factory,  # type: ignore[no-untyped-def]
    canned,  # type: ignore[no-untyped-def]  # noqa: F811
) -> Iterator[LiveApi]:
    """The real app under uvicorn on a free port, with seeded data and a key of its own."""
    served = settings.model_copy(update={"admin_token": SecretStr(ADMIN_TOKEN)})
    key = api_key(session_factory, project="fuzz")
    with (
        api_in_thread(served, "127.0.0.1", free_port()) as url,
        httpx.Client(base_url=url, headers=bearer(key), timeout=60) as client,
    ):
        yield LiveApi(url=url, key=key, ids=seed(client, served))


def fuzz_operation(
    operation: schemathesis.APIOperation, mode: GenerationMode, live_api: LiveApi
) -> str | None:
    """Up to MAX_EXAMPLES cases of one operation, derandomized; the failure, shrunk, or None."""
    token = ADMIN_TOKEN if operation.path.startswith("/v1/admin") else live_api.key

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        # Each example is an HTTP round trip to a live server: slow by Hypothesis's measure.
        suppress_health_check=[hypothesis.HealthCheck.too_slow],
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate, hypothesis.Phase.shrink],
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=bearer(token), checks=CHECKS, timeout=30)

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        return None  # nothing to make invalid: no parameters, no body (GET /healthz)
    except (FailureGroup, Exception) as failure:  # every operation runs; all failures listed
        return f"{operation.label} ({mode.value}): {failure}"
    return None


def test_every_operation_answers_as_documented(live_api: LiveApi) -> None:
    schema = schemathesis.openapi.from_url(
        f"{live_api.url}/openapi.json", config=schemathesis.Config()
    )

    @schema.hook
    def flatmap_path_parameters(
        _: schemathesis.HookContext, path_parameters: dict[str, Any] | None
    ) -> st.SearchStrategy[dict[str, Any] | None]:
        # Schemathesis cannot guess ids: half the cases name something that exists.
        generated = path_parameters or {}
        known = [name for name in generated if name in live_api.ids]
        if not known:
            return st.just(path_parameters)
        real = st.fixed_dictionaries(
            {name: st.sampled_from(live_api.ids[name]) for name in known}
        ).map(lambda ids: {**generated, **ids})
        return st.one_of(st.just(path_parameters), real)

    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # a schema Schemathesis cannot read is a failure too
        operations.append(result.ok())
    assert len(operations) >= 25
    # Deleting last: the seeded files stay for GET .../content until then.
    operations.sort(key=lambda operation: operation.method.upper() == "DELETE")
    failures = [
        failure
        for operation in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        if (failure := fuzz_operation(operation, mode, live_api)) is not None
    ]
    assert not failures, "\n\n".join(failures)
