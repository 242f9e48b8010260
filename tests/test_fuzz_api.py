"""Schemathesis fuzzes every operation of a live server (uvicorn, real Postgres and Redis):
no 5xx, and every response's status code, content type and body as the OpenAPI schema says.

Positive and negative cases of each operation come from Schemathesis's strategies, run by
Hypothesis here: its pytest plugin (`schema.parametrize()`) does not run under pytest 9.2, which
removed the `Node._nodeid` it rewrites. Some JSON bodies carry, in place of one of their texts or
numbers, a value Postgres or strict JSON cannot hold (a NUL character, NaN, Infinity), sent as
Python's json writes it.

Hypothesis alone then hides such values at any depth of every free-form object a tenant sends
(prompt and batch metadata, a JSONL upload's lines and options, training file lines): each is a
422 naming the field and the place inside it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from fastapi.testclient import TestClient
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
from schemathesis.transport.serialization import Binary

from app.kernel.config import Settings
from app.launch import api_in_thread, bearer
from app.main import create_app
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

NUL_PROBLEM = "must not contain NUL (\\u0000) characters"
HOSTILE_VALUES: list[tuple[Any, str]] = [
    ("\x00", NUL_PROBLEM),
    ("step 1\x00", NUL_PROBLEM),
    (math.nan, "NaN is not a JSON number; send a finite number, null or a text"),
    (math.inf, "Infinity is not a JSON number; send a finite number, null or a text"),
    (-math.inf, "-Infinity is not a JSON number; send a finite number, null or a text"),
]
"""Values Postgres or strict JSON cannot hold, with what the API says of each."""
TEXTS = st.text(st.characters(exclude_characters="\x00"), max_size=8)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXTS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXTS, inner, max_size=3),
    max_leaves=8,
)
"""Any JSON a tenant may put in metadata: every value storable."""


def lenient_json(value: Any) -> str:
    """JSON as Python's json writes it by default: NaN and Infinity as bare words, NUL as
    \\u0000 (httpx and requests refuse NaN)."""
    return json.dumps(value, allow_nan=True)


def leaf_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Where the texts and numbers of a JSON value lie: key and index paths."""
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in leaf_paths(item, (*path, key))]
    if isinstance(value, list):
        return [
            leaf for index, item in enumerate(value) for leaf in leaf_paths(item, (*path, index))
        ]
    return [path] if isinstance(value, str | int | float) and not isinstance(value, bool) else []


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    """`value` with the part at `path` replaced by `new` (a copy; `value` stays as it was)."""
    if not path:
        return new
    head, *rest = path
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = replaced(value[head], tuple(rest), new)
    return copy


def with_a_hostile_value(body: Any) -> st.SearchStrategy[Any]:
    """The body as generated, or (a JSON body) with one of its texts or numbers swapped for a
    value Postgres or strict JSON cannot hold, as raw JSON bytes."""
    multipart = isinstance(body, dict) and any(isinstance(v, Binary) for v in body.values())
    paths = [] if multipart else leaf_paths(body)
    if not paths:
        return st.just(body)
    hostile = st.tuples(st.sampled_from(paths), st.sampled_from(HOSTILE_VALUES)).map(
        lambda swap: lenient_json(replaced(body, swap[0], swap[1][0])).encode()
    )
    return st.one_of(st.just(body), hostile)


@dataclass(frozen=True)
class Hostile:
    """A JSON object with one value or key Postgres or strict JSON cannot hold, hidden inside."""

    tree: dict[str, Any]
    path: str
    """Where the value or the key's object lies, as the API names it: `['a'][0]`."""
    problem: str

    def detail(self, field: str, inside: str = "") -> str:
        """What the API says when `tree` is sent as `field`, `inside` the field's value."""
        path = inside + self.path
        return f"{field}: Value error, " + (f"at {path}: " if path else "") + self.problem


@st.composite
def hostile_objects(draw: st.DrawFn) -> Hostile:
    """Any JSON object with one value or key Postgres or strict JSON cannot hold hidden at any
    depth."""
    tree = draw(st.dictionaries(TEXTS, JSON_VALUES, max_size=4))
    containers: list[tuple[str, Any]] = []
    pending: list[tuple[str, Any]] = [("", tree)]
    while pending:
        path, container = pending.pop()
        containers.append((path, container))
        items = container.items() if isinstance(container, dict) else enumerate(container)
        pending.extend(
            (f"{path}[{key!r}]", item) for key, item in items if isinstance(item, dict | list)
        )
    path, container = draw(st.sampled_from(containers))
    if isinstance(container, dict) and draw(st.booleans()):
        key = draw(TEXTS) + "\x00"
        container[key] = draw(JSON_VALUES)
        return Hostile(tree, path, f"key {key!r} {NUL_PROBLEM}")
    value, problem = draw(st.sampled_from(HOSTILE_VALUES))
    if isinstance(container, dict):
        key = draw(TEXTS)
        container[key] = value
        return Hostile(tree, f"{path}[{key!r}]", problem)
    index = draw(st.integers(0, len(container)))
    container.insert(index, value)
    return Hostile(tree, f"{path}[{index}]", problem)


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

    @schema.hook
    def flatmap_body(_: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
        return with_a_hostile_value(body)

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


@pytest.fixture
def api(settings: Settings, redis, session_factory) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """The API in this process, with a server error answered as a 500, not raised."""
    headers = bearer(api_key(session_factory, project="fuzz"))
    with TestClient(create_app(settings), headers=headers, raise_server_exceptions=False) as client:
        yield client


PROMPT = {"question": "What is 2+2?\nA. 3\nB. 4", "reference_answer": "B"}


def jsonl(*lines: Any) -> bytes:
    return "".join(lenient_json(line) + "\n" for line in lines).encode()


Answer = tuple[int, str]
"""A refused request's status code and detail."""


def post_lenient_json(api: TestClient, path: str, body: Any) -> Answer:
    response = api.post(
        path, content=lenient_json(body), headers={"content-type": "application/json"}
    )
    return response.status_code, response.json()["detail"]


def send_in_prompt_metadata(api: TestClient, hostile: Hostile) -> tuple[Answer, str]:
    body = {"prompts": [PROMPT, {**PROMPT, "metadata": hostile.tree}]}
    return post_lenient_json(api, "/v1/batches", body), hostile.detail("prompts[1].metadata")


def send_in_batch_metadata(api: TestClient, hostile: Hostile) -> tuple[Answer, str]:
    body = {"metadata": hostile.tree, "prompts": [PROMPT]}
    return post_lenient_json(api, "/v1/batches", body), hostile.detail("metadata")


def send_in_an_uploaded_line(api: TestClient, hostile: Hostile) -> tuple[Answer, str]:
    upload = jsonl(PROMPT, PROMPT, {**PROMPT, "metadata": hostile.tree})
    response = api.post("/v1/batches", files={"file": ("prompts.jsonl", upload)})
    answer = response.status_code, response.json()["detail"]
    return answer, hostile.detail("file line 3: metadata")


def send_in_upload_options(api: TestClient, hostile: Hostile) -> tuple[Answer, str]:
    response = api.post(
        "/v1/batches",
        files={"file": ("prompts.jsonl", jsonl(PROMPT))},
        data={"options": lenient_json({"metadata": hostile.tree})},
    )
    answer = response.status_code, response.json()["detail"]
    return answer, hostile.detail("options.metadata")


def send_in_a_training_file(api: TestClient, hostile: Hostile) -> tuple[Answer, str]:
    upload = jsonl({"text": "Revenue rose.", "source": hostile.tree})
    response = api.post("/v1/files", files={"file": ("cpt.jsonl", upload)}, data={"purpose": "cpt"})
    answer = response.status_code, response.json()["detail"]
    return answer, hostile.detail("file line 1", inside="['source']")


FREE_FORM_PLACES: list[Callable[[TestClient, Hostile], tuple[Answer, str]]] = [
    send_in_prompt_metadata,
    send_in_batch_metadata,
    send_in_an_uploaded_line,
    send_in_upload_options,
    send_in_a_training_file,
]
PROPERTY_SETTINGS = hypothesis.settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    # One app and one database for all examples: a refused request stores nothing.
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)


@PROPERTY_SETTINGS
@hypothesis.given(hostile=hostile_objects(), send=st.sampled_from(FREE_FORM_PLACES))
def test_a_hostile_value_at_any_depth_of_free_form_json_is_a_422_saying_where(
    api: TestClient, hostile: Hostile, send: Callable[[TestClient, Hostile], tuple[Answer, str]]
) -> None:
    answer, detail = send(api, hostile)
    assert answer == (422, detail)


@PROPERTY_SETTINGS
@hypothesis.given(metadata=st.dictionaries(TEXTS, JSON_VALUES, max_size=4))
def test_any_storable_json_metadata_is_kept_as_sent(
    api: TestClient, metadata: dict[str, Any]
) -> None:
    response = api.post("/v1/batches", json={"metadata": metadata, "prompts": [PROMPT]})
    assert response.status_code == 201, response.text
    assert response.json()["metadata"] == metadata
    # Each example's batch makes room for the next: a project has a cap on open batches.
    assert api.post(f"/v1/batches/{response.json()['id']}/cancel").status_code == 200
