"""Token counts for the pair length filter, without loading the model."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer

from workers.engines.tokens import estimate_tokens, load_token_counter


def test_remote_models_are_estimated_unless_a_tokenizer_is_configured(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    estimated = load_token_counter(engine="openai", model="gpt-4o", models_dir=tmp_path)
    assert estimated(["abcd" * 10, ""]) == [10, 0] == estimate_tokens(["abcd" * 10, ""])

    exact = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = "Net income rose 12% to $4.2 million."
    expected = [len(exact(text, add_special_tokens=False)["input_ids"])]
    configured = load_token_counter(
        engine="openai", model="served-name", models_dir=tmp_path, tokenizer=str(tiny_model_dir)
    )
    assert configured([text]) == expected
    local = load_token_counter(engine="hf", model=str(tiny_model_dir), models_dir=tmp_path)
    assert local([text]) == expected
