"""HFEngine on a tiny random Llama: batching, padding, seeding, token counts, JSON schemas."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.tiny_model import build_tiny_model
from workers.engines.base import Engine, SamplingParams
from workers.engines.hf import HFEngine
from workers.engines.options import HFOptions, engine_options
from workers.engines.registry import clear_engine_cache, load_engine

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

CONVERSATIONS = [
    [{"role": "user", "content": "What is 2+2?"}],
    [
        {"role": "system", "content": "You are a careful financial analyst."},
        {
            "role": "user",
            "content": "Revenue rose 12% year over year while operating margin narrowed to 18.5%. "
            "What happened to operating income?",
        },
    ],
    [{"role": "user", "content": "Define free cash flow."}],
]

GREEDY = SamplingParams(n=1, temperature=0.0, max_tokens=24)

VERDICT_SCHEMA = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["correct", "incorrect"]},
        "reason": {"type": "string", "maxLength": 24},
    },
    "required": ["verdict", "reason"],
}


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> HFEngine:
    return HFEngine(model_name="tiny", path=str(tiny_model_dir))


def _texts(generations: list) -> list[list[str]]:
    return [[c.text for c in g.completions] for g in generations]


def test_engine_satisfies_protocol(engine: HFEngine) -> None:
    assert isinstance(engine, Engine)
    assert engine.model_name == "tiny"
    assert engine.supports_json_schema is True


def test_generate_returns_n_completions_per_conversation_in_order(engine: HFEngine) -> None:
    generations = engine.generate(CONVERSATIONS, SamplingParams(n=3, max_tokens=8, seed=0))

    assert len(generations) == len(CONVERSATIONS)
    assert all(len(g.completions) == 3 for g in generations)
    prompt_tokens = [g.prompt_tokens for g in generations]
    # The long second conversation must keep its own prompt count, not the batch's padded one.
    assert prompt_tokens[1] > prompt_tokens[0]
    assert prompt_tokens[1] > prompt_tokens[2]


def test_empty_batch_returns_nothing(engine: HFEngine) -> None:
    assert engine.generate([], GREEDY) == []


def test_left_padded_batch_matches_each_prompt_alone(engine: HFEngine) -> None:
    batched = _texts(engine.generate(CONVERSATIONS, GREEDY))
    alone = [_texts(engine.generate([c], GREEDY))[0] for c in CONVERSATIONS]

    assert batched == alone


def test_micro_batches_match_one_batch(tiny_model_dir: Path, engine: HFEngine) -> None:
    small = HFEngine(
        model_name="tiny", path=str(tiny_model_dir), options=HFOptions(max_batch_sequences=2)
    )
    params = SamplingParams(n=2, temperature=0.0, max_tokens=12)

    assert _texts(small.generate(CONVERSATIONS, params)) == _texts(
        engine.generate(CONVERSATIONS, params)
    )


def test_greedy_is_deterministic(engine: HFEngine) -> None:
    params = SamplingParams(n=2, temperature=0.0, max_tokens=16)
    first = _texts(engine.generate(CONVERSATIONS, params))
    second = _texts(engine.generate(CONVERSATIONS, params))

    assert first == second
    assert all(a == b for a, b in first)


def test_seeded_sampling_is_reproducible(engine: HFEngine) -> None:
    params = SamplingParams(n=4, temperature=1.0, top_p=0.95, max_tokens=16, seed=1234)
    first = _texts(engine.generate(CONVERSATIONS, params))
    again = _texts(engine.generate(CONVERSATIONS, params))
    other = _texts(engine.generate(CONVERSATIONS, dataclasses.replace(params, seed=99)))

    assert first == again
    assert first != other
    assert len(set(first[0])) > 1, "n samples of one prompt should differ"


def test_token_counts_match_the_tokenizer(engine: HFEngine) -> None:
    generations = engine.generate(CONVERSATIONS, SamplingParams(n=2, max_tokens=20, seed=3))

    for conversation, generation in zip(CONVERSATIONS, generations, strict=True):
        prompt = engine.tokenizer.apply_chat_template(
            conversation, tokenize=False, add_generation_prompt=True
        )
        assert generation.prompt_tokens == engine.count_tokens([str(prompt)])[0]
        for completion in generation.completions:
            assert 1 <= completion.completion_tokens <= 20


def test_completion_tokens_count_up_to_and_including_eos(engine: HFEngine) -> None:
    import torch

    eos, pad = engine.eos_token_ids[0], engine.tokenizer.pad_token_id
    finished = engine._completion(torch.tensor([40, 41, 42, eos, pad, pad]), 6)
    unfinished = engine._completion(torch.tensor([40, 41, 42, 43, 44, 45]), 6)

    assert finished.completion_tokens == 4
    assert finished.text == engine.tokenizer.decode([40, 41, 42])
    assert unfinished.completion_tokens == 6


def test_finish_reason_is_length_only_for_a_row_cut_at_max_tokens(engine: HFEngine) -> None:
    import torch

    eos = engine.eos_token_ids[0]
    # A row that stopped on EOS is padded to the batch's length: still "stop". Padding with
    # the EOS id itself (pad = eos when the tokenizer has no pad token) must read the same.
    padded = engine._completion(torch.tensor([40, 41, eos, eos, eos, eos]), 6)
    eos_last = engine._completion(torch.tensor([40, 41, 42, 43, 44, eos]), 6)
    cut = engine._completion(torch.tensor([40, 41, 42, 43, 44, 45]), 6)

    assert (padded.finish_reason, padded.completion_tokens) == ("stop", 3)
    assert (eos_last.finish_reason, eos_last.completion_tokens) == ("stop", 6)
    assert (cut.finish_reason, cut.completion_tokens) == ("length", 6)


def test_generate_reports_each_completions_finish_reason(engine: HFEngine) -> None:
    cut = engine.generate(CONVERSATIONS, SamplingParams(n=2, max_tokens=3, seed=7))
    constrained = engine.generate(
        CONVERSATIONS, SamplingParams(n=2, max_tokens=80, seed=5, json_schema=VERDICT_SCHEMA)
    )

    for generation in cut:
        for completion in generation.completions:
            # The random model's 3 tokens hold no EOS: each one ran into max_tokens.
            assert completion.completion_tokens == 3
            assert completion.finish_reason == "length"
    for generation in constrained:
        for completion in generation.completions:
            assert completion.finish_reason == "stop"  # the grammar ended it with EOS


def test_schema_constrained_completions_stop_before_max_tokens(engine: HFEngine) -> None:
    params = SamplingParams(n=2, max_tokens=80, seed=5, json_schema=VERDICT_SCHEMA)

    for generation in engine.generate(CONVERSATIONS, params):
        for completion in generation.completions:
            assert completion.completion_tokens < 80
            assert completion.text.endswith("}")


def test_max_tokens_is_respected(engine: HFEngine) -> None:
    generations = engine.generate(CONVERSATIONS, SamplingParams(n=3, max_tokens=5, seed=7))

    counts = [c.completion_tokens for g in generations for c in g.completions]
    assert max(counts) <= 5
    assert 5 in counts, "a random model rarely stops on its own within 5 tokens"


def test_json_schema_output_is_valid_for_every_completion(engine: HFEngine) -> None:
    params = SamplingParams(
        n=4, temperature=1.0, max_tokens=80, seed=11, json_schema=VERDICT_SCHEMA
    )
    generations = engine.generate(CONVERSATIONS, params)

    for generation in generations:
        for completion in generation.completions:
            answer = json.loads(completion.text)
            assert set(answer) == {"verdict", "reason"}
            assert answer["verdict"] in ("correct", "incorrect")
            assert isinstance(answer["reason"], str)
            assert len(answer["reason"]) <= 24


def test_json_schema_keeps_property_order(engine: HFEngine) -> None:
    schema = {
        "type": "object",
        "properties": {
            "reasoning": {"type": "string", "maxLength": 8},
            "answer": {"type": "string", "enum": ["A", "B", "C"]},
        },
        "required": ["reasoning", "answer"],
    }
    params = SamplingParams(n=2, max_tokens=40, seed=2, json_schema=schema)

    for generation in engine.generate(CONVERSATIONS[:1], params):
        for completion in generation.completions:
            assert list(json.loads(completion.text)) == ["reasoning", "answer"]


def test_each_conversation_follows_its_own_json_schema_in_one_call(engine: HFEngine) -> None:
    def choice_schema(options: list[int]) -> dict:
        return {
            "type": "object",
            "properties": {"step": {"type": "integer", "enum": options}},
            "required": ["step"],
            "additionalProperties": False,
        }

    schemas = (choice_schema([1]), choice_schema([2, 3]), choice_schema([4]))
    params = SamplingParams(n=2, temperature=1.0, max_tokens=40, seed=3, json_schemas=schemas)

    generations = engine.generate(CONVERSATIONS, params)

    steps = [[json.loads(c.text)["step"] for c in g.completions] for g in generations]
    assert steps[0] == [1, 1] and set(steps[1]) <= {2, 3} and steps[2] == [4, 4]


def test_json_schemas_must_match_the_conversations(engine: HFEngine) -> None:
    schema = {"type": "object", "properties": {}, "required": [], "additionalProperties": False}

    with pytest.raises(ValueError, match=r"json_schemas: must hold one schema per conversation"):
        engine.generate(CONVERSATIONS, SamplingParams(json_schemas=(schema,)))


def test_count_tokens(engine: HFEngine) -> None:
    texts = ["Free cash flow", "", "Revenue rose 12% year over year."]

    counts = engine.count_tokens(texts)

    assert counts[1] == 0
    assert 0 < counts[0] < counts[2] <= len(texts[2])
    assert engine.count_tokens([]) == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (SamplingParams(n=0), "n: must be at least 1, got 0"),
        (SamplingParams(max_tokens=0), "max_tokens: must be at least 1, got 0"),
        (SamplingParams(temperature=-0.1), "temperature: must be 0 or more, got -0.1"),
        (SamplingParams(top_p=0.0), "top_p: must be in (0, 1], got 0.0"),
    ],
)
def test_invalid_sampling_params_are_rejected(
    engine: HFEngine, params: SamplingParams, message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("]", r"\]")):
        engine.generate(CONVERSATIONS, params)


def test_invalid_options_are_rejected_with_the_field_and_value() -> None:
    with pytest.raises(
        ValueError,
        match=re.escape(
            "ENGINE_OPTIONS.hf.dtype: Input should be 'float32', 'bfloat16' or 'float16', "
            "got 'int8'"
        ),
    ):
        engine_options("hf", {"dtype": "int8"})
    with pytest.raises(
        ValueError,
        match=re.escape(
            "ENGINE_OPTIONS.hf.max_batch_sequences: Input should be greater than or equal to 1, "
            "got 0"
        ),
    ):
        engine_options("hf", {"max_batch_sequences": 0})


def test_tokenizer_without_chat_template_uses_plain_prompt(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    plain_dir = tmp_path / "plain"
    shutil.copytree(tiny_model_dir, plain_dir)
    (plain_dir / "chat_template.jinja").unlink()
    plain = HFEngine(model_name="plain", path=str(plain_dir))
    assert not plain.tokenizer.chat_template

    generations = plain.generate(CONVERSATIONS[:1], SamplingParams(n=2, max_tokens=4, seed=0))

    expected = plain.tokenizer("User: What is 2+2?\n\nAssistant:")["input_ids"]
    assert generations[0].prompt_tokens == len(expected)
    assert len(generations[0].completions) == 2


def test_load_engine_loads_each_model_once(tiny_model_dir: Path, tmp_path: Path) -> None:
    clear_engine_cache()
    try:
        first = load_engine(engine="hf", model=str(tiny_model_dir), models_dir=tmp_path)
        second = load_engine(engine="hf", model=str(tiny_model_dir), models_dir=tmp_path)

        assert first is second
        assert isinstance(first, HFEngine)
        clear_engine_cache()
        assert load_engine(engine="hf", model=str(tiny_model_dir), models_dir=tmp_path) is not first
    finally:
        clear_engine_cache()


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed")
def test_load_engine_says_how_to_get_vllm_where_it_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="engine: 'vllm' is not available in this build"):
        load_engine(engine="vllm", model="tiny", models_dir=tmp_path)


def test_load_engine_needs_a_base_url_for_openai(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ENGINE_OPTIONS.openai.base_url: required"):
        load_engine(engine="openai", model="gpt-4o", models_dir=tmp_path)


def test_load_engine_rejects_unknown_engine(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="engine: must be one of hf, vllm, openai, got 'llamacpp'"):
        load_engine(engine="llamacpp", model="tiny", models_dir=tmp_path)
