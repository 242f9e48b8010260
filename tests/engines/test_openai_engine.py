"""OpenAIEngine against a real HTTP server on 127.0.0.1 that records requests and answers cans."""

from __future__ import annotations

import asyncio
import random
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from workers.engines.base import Engine, RequestRejectedError, SamplingParams
from workers.engines.openai import (
    OpenAIEngine,
    OpenAIEngineError,
    split_completion_tokens,
    strict_schema,
)
from workers.engines.options import OpenAIOptions, engine_options
from workers.engines.registry import clear_engine_cache, load_engine
from workers.judging import (
    AnswerToJudge,
    JudgeSettings,
    analyse_first_errors,
    judge_final_answers,
)

SCHEMA = {
    "type": "object",
    "properties": {"verdict": {"type": "string", "enum": ["correct", "wrong"]}},
    "required": ["verdict"],
}


@dataclass
class Failure:
    status: int
    message: str = "try again"
    headers: dict[str, str] = field(default_factory=dict)
    param: str | None = None


@dataclass
class ServerState:
    """What the fake server saw, and how it should answer the next requests."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    """Answered in order to the next requests, one each, before any success."""
    always: Failure | None = None
    reject_n: bool = False
    """Answer 400 to n > 1, the way a server without `n` does."""
    max_delay_s: float = 0.0
    stall_s: list[float] = field(default_factory=list)
    """Sleeps before answering the next requests, one each (for client timeouts)."""
    texts: list[str] | None = None
    """Canned choice texts; default: 'reply to <last message> #<choice> seed=<seed>'."""
    usage: bool = True
    finish_reasons: list[str] | None = None
    """Canned finish reasons of the choices; default: all "stop"."""
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _make_app(state: ServerState) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> JSONResponse:
        body = await request.json()
        with state.lock:
            state.bodies.append(body)
            state.headers.append(dict(request.headers))
            failure = state.failures.pop(0) if state.failures else state.always
            stall = state.stall_s.pop(0) if state.stall_s else 0.0
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            await asyncio.sleep(stall + random.uniform(0, state.max_delay_s))
        finally:
            with state.lock:
                state.in_flight -= 1
        if failure is not None:
            error = {"message": failure.message, "type": "error", "param": failure.param}
            return JSONResponse({"error": error}, failure.status, headers=failure.headers)
        n = body.get("n", 1)
        if state.reject_n and n > 1:
            error = {"message": "n must be 1 for this model", "type": "invalid_request_error"}
            return JSONResponse({"error": {**error, "param": None}}, 400)
        last = body["messages"][-1]["content"]
        texts = state.texts or [f"reply to {last} #{i} seed={body.get('seed')}" for i in range(n)]
        answer: dict[str, Any] = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": (state.finish_reasons or ["stop"] * n)[i],
                }
                for i, text in enumerate(texts[:n])
            ],
        }
        if state.usage:
            answer["usage"] = {
                "prompt_tokens": 7,
                "completion_tokens": 12,
                "total_tokens": 19,
            }
        return JSONResponse(answer)

    return app


class FakeServer:
    def __init__(self) -> None:
        self.state = ServerState()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        config = uvicorn.Config(
            _make_app(self.state), log_level="warning", lifespan="off", timeout_keep_alive=30
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]})

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake OpenAI server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def reset(self) -> None:
        fresh = ServerState()
        for name in fresh.__dataclass_fields__:
            if name != "lock":
                setattr(self.state, name, getattr(fresh, name))


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def state(server: FakeServer) -> ServerState:
    server.reset()
    return server.state


def _engine(server: FakeServer, **kwargs: Any) -> OpenAIEngine:
    options: dict[str, Any] = {
        "base_url": server.base_url,
        "max_retries": 3,
        "retry_backoff_s": 0.01,
        "timeout_s": 5.0,
    }
    options.update(kwargs)
    return OpenAIEngine(model_name="judge", options=OpenAIOptions(**options))


def _ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _texts(generations: list) -> list[list[str]]:
    return [[c.text for c in g.completions] for g in generations]


def test_engine_satisfies_protocol(server: FakeServer) -> None:
    with _engine(server) as engine:
        assert isinstance(engine, Engine)
        assert engine.model_name == "judge"
        assert engine.supports_json_schema is True


def test_request_maps_sampling_params(server: FakeServer, state: ServerState) -> None:
    params = SamplingParams(n=3, temperature=0.7, top_p=0.9, max_tokens=33, seed=11)
    with _engine(server, served_model="org/judge-7b", api_key="sk-test") as engine:
        [generation] = engine.generate([_ask("What is 2+2?")], params)

    assert len(generation.completions) == 3
    [body] = state.bodies
    assert body == {
        "model": "org/judge-7b",
        "messages": [{"role": "user", "content": "What is 2+2?"}],
        "n": 3,
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 33,
        "seed": 11,
    }
    assert state.headers[0]["authorization"] == "Bearer sk-test"


def test_unseeded_request_sends_no_seed_and_no_key(server: FakeServer, state: ServerState) -> None:
    with _engine(server) as engine:
        engine.generate([_ask("hi")], SamplingParams())
    assert "seed" not in state.bodies[0]
    assert "authorization" not in state.headers[0]
    assert state.bodies[0]["model"] == "judge"


def test_json_schema_becomes_strict_response_format(server: FakeServer, state: ServerState) -> None:
    with _engine(server) as engine:
        engine.generate([_ask("judge this")], SamplingParams(json_schema=SCHEMA))
    assert state.bodies[0]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "reply", "schema": strict_schema(SCHEMA), "strict": True},
    }
    assert state.bodies[0]["response_format"]["json_schema"]["schema"] == {
        **SCHEMA,
        "additionalProperties": False,
    }


def test_each_conversation_is_sent_its_own_schema(server: FakeServer, state: ServerState) -> None:
    schemas = tuple(
        {**SCHEMA, "properties": {"verdict": {"type": "string", "enum": [verdict]}}}
        for verdict in ("correct", "wrong")
    )
    with _engine(server) as engine:
        engine.generate([_ask("first"), _ask("second")], SamplingParams(json_schemas=schemas))

    sent = {
        body["messages"][-1]["content"]: body["response_format"]["json_schema"]["schema"]
        for body in state.bodies
    }
    assert sent == {"first": strict_schema(schemas[0]), "second": strict_schema(schemas[1])}
    assert sent["first"]["properties"]["verdict"]["enum"] == ["correct"]


def test_json_schema_is_not_sent_when_engine_lacks_support(
    server: FakeServer, state: ServerState
) -> None:
    with _engine(server, supports_json_schema=False) as engine:
        assert engine.supports_json_schema is False
        engine.generate([_ask("judge this")], SamplingParams(json_schema=SCHEMA))
    assert "response_format" not in state.bodies[0]


def test_many_conversations_keep_their_order_under_concurrency(
    server: FakeServer, state: ServerState
) -> None:
    state.max_delay_s = 0.03
    questions = [f"question {i}" for i in range(40)]
    with _engine(server, max_concurrency=8) as engine:
        generations = engine.generate([_ask(q) for q in questions], SamplingParams(n=2, seed=5))

    assert _texts(generations) == [
        [f"reply to {q} #0 seed=5", f"reply to {q} #1 seed=5"] for q in questions
    ]
    assert len(state.bodies) == 40
    assert 1 < state.max_in_flight <= 8


def test_429_is_retried_after_retry_after_seconds(server: FakeServer, state: ServerState) -> None:
    state.failures = [Failure(429, "rate limited", headers={"Retry-After": "0"})] * 2
    # A backoff of 5 s would show if Retry-After were ignored.
    with _engine(server, retry_backoff_s=5.0) as engine:
        started = time.monotonic()
        [generation] = engine.generate([_ask("hi")], SamplingParams())
        elapsed = time.monotonic() - started

    assert generation.completions[0].text == "reply to hi #0 seed=None"
    assert len(state.bodies) == 3
    assert elapsed < 2.0


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried_then_succeed(
    server: FakeServer, state: ServerState, status: int
) -> None:
    state.failures = [Failure(status, "overloaded"), Failure(503, "still overloaded")]
    with _engine(server) as engine:
        [generation] = engine.generate([_ask("hi")], SamplingParams())
    assert generation.completions[0].text == "reply to hi #0 seed=None"
    assert len(state.bodies) == 3


def test_timeout_is_retried(server: FakeServer, state: ServerState) -> None:
    state.stall_s = [1.0]
    with _engine(server, timeout_s=0.2) as engine:
        [generation] = engine.generate([_ask("hi")], SamplingParams())
    assert generation.completions[0].text == "reply to hi #0 seed=None"
    assert len(state.bodies) == 2


def test_client_error_fails_at_once_naming_status_and_message(
    server: FakeServer, state: ServerState
) -> None:
    state.failures = [Failure(400, "messages: role 'robot' is not supported")]
    with _engine(server) as engine, pytest.raises(OpenAIEngineError) as raised:
        engine.generate([_ask("hi")], SamplingParams())
    assert "status 400" in str(raised.value)
    assert "role 'robot' is not supported" in str(raised.value)
    assert raised.value.status_code == 400
    assert isinstance(raised.value, RequestRejectedError)  # the chunk fails without a rerun
    assert len(state.bodies) == 1


def test_exhausted_retries_are_not_a_rejected_request(
    server: FakeServer, state: ServerState
) -> None:
    state.always = Failure(429, "slow down")
    with _engine(server, max_retries=1) as engine, pytest.raises(OpenAIEngineError) as raised:
        engine.generate([_ask("hi")], SamplingParams())
    assert not isinstance(raised.value, RequestRejectedError)  # the chunk may try again later


def test_exhausted_retries_raise_engine_error(server: FakeServer, state: ServerState) -> None:
    state.always = Failure(503, "model is loading")
    with _engine(server, max_retries=2) as engine, pytest.raises(OpenAIEngineError) as raised:
        engine.generate([_ask("hi")], SamplingParams())
    message = str(raised.value)
    assert "gave up after 2 retries" in message
    assert "status 503" in message
    assert "model is loading" in message
    assert raised.value.status_code == 503
    assert len(state.bodies) == 3


def test_unreachable_server_raises_engine_error_after_retries() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    engine = OpenAIEngine(
        model_name="judge",
        options=OpenAIOptions(
            base_url=f"http://127.0.0.1:{port}/v1", max_retries=1, retry_backoff_s=0.01
        ),
    )
    with engine, pytest.raises(OpenAIEngineError, match="gave up after 1 retries: ConnectError"):
        engine.generate([_ask("hi")], SamplingParams())


def test_missing_version_in_base_url_gets_a_hint(server: FakeServer, state: ServerState) -> None:
    with (
        _engine(server, base_url=f"http://127.0.0.1:{server.port}") as engine,
        pytest.raises(OpenAIEngineError, match=r"status 404.*end with the API version"),
    ):
        engine.generate([_ask("hi")], SamplingParams())


def test_server_rejecting_n_gets_one_request_per_completion(
    server: FakeServer, state: ServerState
) -> None:
    state.reject_n = True
    params = SamplingParams(n=3, seed=100)
    with _engine(server) as engine:
        generations = engine.generate([_ask("a"), _ask("b")], params)
        assert engine.supports_n is False
        assert _texts(generations) == [
            [f"reply to {q} #0 seed={100 + k}" for k in range(3)] for q in "ab"
        ]
        rejected = [body for body in state.bodies if body["n"] > 1]
        assert len(rejected) == 2
        assert len(state.bodies) == 2 + 6

        # Remembered: the next call sends n=1 requests straight away.
        state.bodies.clear()
        engine.generate([_ask("c")], params)
        assert [body["n"] for body in state.bodies] == [1, 1, 1]


def test_supports_n_false_sends_single_completion_requests(
    server: FakeServer, state: ServerState
) -> None:
    with _engine(server, supports_n=False) as engine:
        [generation] = engine.generate([_ask("a")], SamplingParams(n=2))
    assert [c.text for c in generation.completions] == [
        "reply to a #0 seed=None",
        "reply to a #0 seed=None",
    ]
    assert [body["n"] for body in state.bodies] == [1, 1]


def test_token_counts_come_from_usage(server: FakeServer, state: ServerState) -> None:
    with _engine(server) as engine:
        [single] = engine.generate([_ask("hi")], SamplingParams(n=1))
        state.texts = ["x" * 10, "y" * 20, "z" * 30]
        [triple] = engine.generate([_ask("hi")], SamplingParams(n=3))

    assert single.prompt_tokens == 7
    assert [c.completion_tokens for c in single.completions] == [12]
    # Usage reports 12 completion tokens for all three choices: split by text length.
    assert triple.prompt_tokens == 7
    assert [c.completion_tokens for c in triple.completions] == [2, 4, 6]


def test_each_choice_keeps_its_finish_reason(server: FakeServer, state: ServerState) -> None:
    state.finish_reasons = ["stop", "length", "content_filter"]
    with _engine(server) as engine:
        [generation] = engine.generate([_ask("hi")], SamplingParams(n=3))

    # Only a cut at max_tokens is "length"; any other end is the model's own.
    assert [c.finish_reason for c in generation.completions] == ["stop", "length", "stop"]


def test_missing_usage_is_estimated(server: FakeServer, state: ServerState) -> None:
    state.usage = False
    state.texts = ["12345678"]
    with _engine(server) as engine:
        [generation] = engine.generate([_ask("abcdefghi")], SamplingParams())
    assert generation.prompt_tokens == 3
    assert generation.completions[0].completion_tokens == 2


def test_split_completion_tokens_sums_to_the_total() -> None:
    assert split_completion_tokens(10, ["a", "bb", "ccc"]) == [2, 3, 5]
    assert sum(split_completion_tokens(7, ["ab", "ab", "ab"])) == 7
    assert split_completion_tokens(4, ["", ""]) == [2, 2]
    assert split_completion_tokens(0, ["abc"]) == [0]


def test_count_tokens_estimates_four_characters_a_token(server: FakeServer) -> None:
    with _engine(server) as engine:
        assert engine.count_tokens(["", "abcd", "abcde", "x" * 401]) == [0, 1, 2, 101]
        assert engine.count_tokens([]) == []


def test_count_tokens_uses_a_local_tokenizer(server: FakeServer, tmp_path: Path) -> None:
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from tests.tiny_model import _train_tokenizer

    PreTrainedTokenizerFast(tokenizer_object=_train_tokenizer(vocab_size=300)).save_pretrained(
        tmp_path
    )
    texts = ["Revenue rose 12% year over year.", "Total assets equal liabilities."]
    expected = [len(ids) for ids in AutoTokenizer.from_pretrained(tmp_path)(texts)["input_ids"]]
    with _engine(server, tokenizer=str(tmp_path)) as engine:
        assert engine.count_tokens(texts) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base_url": "127.0.0.1:8000/v1"}, "base_url: must be an http(s) URL"),
        (
            {"max_concurrency": 0},
            "max_concurrency: Input should be greater than or equal to 1, got 0",
        ),
        ({"timeout_s": 0}, "timeout_s: Input should be greater than 0, got 0"),
        ({"max_retries": -1}, "max_retries: Input should be greater than or equal to 0, got -1"),
        (
            {"retry_backoff_s": -1.0},
            "retry_backoff_s: Input should be greater than or equal to 0, got -1.0",
        ),
        ({"served_model": ""}, "served_model: String should have at least 1 character, got ''"),
        ({"tokenizer": "/no/such/folder"}, "tokenizer: must be a local tokenizer folder"),
        ({"max_retry": 3}, "max_retry: Extra inputs are not permitted, got 3"),
    ],
)
def test_invalid_options_are_named(kwargs: dict[str, Any], message: str) -> None:
    options: dict[str, Any] = {"base_url": "http://127.0.0.1:1/v1"}
    expected = "ENGINE_OPTIONS.openai." + message
    with pytest.raises(ValueError, match=re.escape(expected)):
        engine_options("openai", options | kwargs)


def test_invalid_sampling_params_are_named(server: FakeServer, state: ServerState) -> None:
    with _engine(server) as engine, pytest.raises(ValueError, match="n: must be at least 1"):
        engine.generate([_ask("hi")], SamplingParams(n=0))
    assert state.bodies == []


def test_registry_loads_openai_engine_from_options(server: FakeServer, tmp_path: Path) -> None:
    clear_engine_cache()
    try:
        with pytest.raises(ValueError, match="ENGINE_OPTIONS.openai.base_url: required"):
            load_engine(engine="openai", model="judge", models_dir=tmp_path, options={})
        engine = load_engine(
            engine="openai",
            model="org/judge-7b",
            models_dir=tmp_path,
            options={"base_url": server.base_url, "max_concurrency": 4},
        )
        assert isinstance(engine, OpenAIEngine)
        assert engine.model_name == "org/judge-7b"
        assert engine.served_model == "org/judge-7b"
        assert engine.max_concurrency == 4
        engine.close()
    finally:
        clear_engine_cache()


def test_server_ignoring_n_gets_the_missing_completions_one_by_one(
    server: FakeServer, state: ServerState
) -> None:
    state.texts = ["only one"]
    with _engine(server) as engine:
        [generation] = engine.generate([_ask("a")], SamplingParams(n=3))
        assert engine.supports_n is False
    assert [c.text for c in generation.completions] == ["only one"] * 3
    assert [body["n"] for body in state.bodies] == [3, 1, 1]


# What OpenAI's strict mode takes (its "supported schemas"): these keywords only; every object
# closed (additionalProperties false) with every property required; an object at the root.
STRICT_KEYWORDS = frozenset(
    {"type", "properties", "required", "additionalProperties", "enum", "items", "anyOf"}
    | {"const", "description"}
)


def strict_problems(schema: dict[str, Any], path: str = "$") -> list[str]:
    """Where a JSON schema leaves OpenAI's strict subset (none: it is accepted)."""
    problems = [f"{path}: {key!r} is not allowed" for key in schema if key not in STRICT_KEYWORDS]
    if schema.get("type") == "object":
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is not False:
            problems.append(f"{path}: additionalProperties must be false")
        if sorted(schema.get("required", [])) != sorted(properties):
            problems.append(f"{path}: every property must be required")
        for name, subschema in properties.items():
            problems += strict_problems(subschema, f"{path}.{name}")
    if "items" in schema:
        problems += strict_problems(schema["items"], f"{path}[]")
    for index, subschema in enumerate(schema.get("anyOf", [])):
        problems += strict_problems(subschema, f"{path}|{index}")
    return problems


def test_strict_problems_finds_what_openai_refuses() -> None:
    schema = {
        "type": "object",
        "properties": {"why": {"type": "string", "maxLength": 9}, "n": {"type": "integer"}},
        "required": ["why"],
    }

    assert strict_problems(schema) == [
        "$: additionalProperties must be false",
        "$: every property must be required",
        "$.why: 'maxLength' is not allowed",
    ]


def _answer_with_steps(count: int) -> str:
    steps = [f"Step {n}: The value after year {n} is 1000 * 1.05^{n}." for n in range(1, count + 1)]
    return "\n".join([*steps, "Answer: 1100"])


def test_every_judge_schema_is_sent_in_openai_strict_form(
    server: FakeServer, state: ServerState
) -> None:
    answers = [
        AnswerToJudge(
            count, "What is 1000 at 5% after n years?", "1102.50", _answer_with_steps(count)
        )
        for count in range(1, 13)
    ]
    settings = JudgeSettings(max_tokens=64, temperature=0.0, retries=0)

    with _engine(server) as engine:
        judge_final_answers(engine, answers, settings)
        analyse_first_errors(engine, answers, settings, prompt_version="scp-v1")
        analyse_first_errors(engine, answers, settings, prompt_version="scp-steps-v1")

    formats = [body["response_format"]["json_schema"] for body in state.bodies]
    assert len(formats) == 3 * len(answers)
    assert all(sent["strict"] is True for sent in formats)
    for sent in formats:
        assert sent["schema"]["type"] == "object"
        assert strict_problems(sent["schema"]) == [], sent["schema"]
    step_enums = sorted(
        sent["schema"]["properties"]["first_wrong_step"]["anyOf"][0]["enum"]
        for sent in formats
        if sent["schema"]["properties"]
        .get("first_wrong_step", {})
        .get("anyOf", [{}])[0]
        .get("type")
        == "integer"
    )
    assert step_enums == [list(range(1, count + 1)) for count in range(1, 13)]
