"""Engine on plain transformers: one batched `model.generate` per call, xgrammar for JSON."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

from workers.engines.base import (
    Completion,
    Generation,
    Message,
    SamplingParams,
    check_sampling_params,
    continues_final_message,
    schemas_for,
)
from workers.engines.options import HFOptions
from workers.engines.progress import StepCounter, current_watcher
from workers.engines.tokens import count_with_tokenizer

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# xgrammar <= 0.2.9 lowers a string with minLength/maxLength to repeats of this class, which
# admits raw control characters that strict JSON parsers reject (mlc-ai/xgrammar#800); the
# unbounded-string rule already excludes them, so bounded strings get the same class.
_BOUNDED_STRING_CHAR = r"[^\"\\\r\n]"
_JSON_STRING_CHAR = r"[^\0-\x1f\"\\\r\n]"


def _plain_prompt(conversation: list[Message]) -> str:
    """Render a conversation for a tokenizer that has no chat template; a final assistant
    message is left open for the model to continue."""
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in conversation]
    if continues_final_message(conversation):
        return "\n\n".join(lines)
    return "\n\n".join([*lines, "Assistant:"])


def _rows_per_prompt(params: SamplingParams) -> int:
    """Sequences decoded per prompt: greedy decoding gives n identical ones, so decode one."""
    return params.n if params.temperature > 0 else 1


class HFEngine:
    """A causal LM loaded once with transformers; generation batched over all conversations."""

    supports_json_schema: bool = True

    def __init__(
        self,
        *,
        model_name: str,
        path: str,
        device: str = "cpu",
        options: HFOptions | None = None,
    ) -> None:
        options = options or HFOptions()
        dtype, max_batch_sequences = options.dtype, options.max_batch_sequences

        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

        self.model_name = model_name
        self.path = path
        self.device = device
        self.max_batch_sequences = max_batch_sequences

        tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(path)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.tokenizer = tokenizer

        model: PreTrainedModel = AutoModelForCausalLM.from_pretrained(
            path, dtype=getattr(torch, dtype)
        )
        model.to(device)  # type: ignore[arg-type]
        model.eval()
        self.model = model

        eos = model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if tokenizer.eos_token_id is not None:
            eos_ids.add(tokenizer.eos_token_id)
        if not eos_ids:
            raise ValueError(f"path: model at {path!r} defines no eos token")
        self.eos_token_ids: list[int] = sorted(eos_ids)
        # Decode with exactly what SamplingParams says: drop the checkpoint's sampling defaults
        # (top_k, repetition_penalty, ...) that generate() would otherwise fill in.
        model.generation_config = GenerationConfig(
            eos_token_id=self.eos_token_ids,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
        )

        # One generate at a time: a CPU model gains nothing from overlapping calls, and seeding
        # goes through torch's global RNG.
        self._lock = threading.Lock()
        self._grammar_compiler: Any = None
        self._grammars: dict[str, Any] = {}

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Token count of each text under this model's tokenizer, without special tokens."""
        return count_with_tokenizer(self.tokenizer, texts)

    def generate(
        self, conversations: list[list[Message]], params: SamplingParams
    ) -> list[Generation]:
        """Return one Generation (with params.n completions) per conversation, in order."""
        check_sampling_params(params)
        if not conversations:
            return []
        import torch

        prompts = [self._render(conversation) for conversation in conversations]
        per_batch = max(1, self.max_batch_sequences // _rows_per_prompt(params))
        generations: list[Generation] = []
        # The seed fixes the output for the same inputs, params and max_batch_sequences; the
        # global RNG is restored afterwards so seeded calls do not make later ones predictable.
        rng_devices: list[int] | None = [] if torch.device(self.device).type == "cpu" else None
        schemas = schemas_for(params, len(conversations))
        with self._lock, torch.inference_mode(), torch.random.fork_rng(devices=rng_devices):
            grammars = [self._compiled_grammar(s) if s else None for s in schemas]
            if params.seed is not None:
                torch.manual_seed(params.seed)
            for start in range(0, len(prompts), per_batch):
                end = start + per_batch
                part, part_grammars = prompts[start:end], grammars[start:end]
                streamer = self._step_counter(params, rows=len(part), before=start, of=prompts)
                generations += self._generate_batch(part, params, part_grammars, streamer)
        return generations

    def _step_counter(
        self, params: SamplingParams, *, rows: int, before: int, of: list[str]
    ) -> StepCounter | None:
        """A streamer reporting each decoding step to the job's watcher, if one watches."""
        watcher = current_watcher()
        if watcher is None:
            return None
        per_prompt = _rows_per_prompt(params)
        return StepCounter(
            watcher,
            eos_token_ids=self.eos_token_ids,
            max_new_tokens=params.max_tokens,
            rows=rows * per_prompt,
            rows_before=before * per_prompt,
            total_rows=len(of) * per_prompt,
        )

    def _render(self, conversation: list[Message]) -> str:
        if self.tokenizer.chat_template:
            continuing = continues_final_message(conversation)
            rendered = self.tokenizer.apply_chat_template(
                conversation,
                tokenize=False,
                add_generation_prompt=not continuing,
                continue_final_message=continuing,
            )
            return str(rendered)
        return _plain_prompt(conversation)

    def _compiled_grammar(self, schema: dict[str, Any]) -> Any:
        """Compile a JSON schema for this tokenizer once; later calls reuse it."""
        import xgrammar as xgr

        key = json.dumps(schema)
        if key not in self._grammars:
            if self._grammar_compiler is None:
                info = xgr.TokenizerInfo.from_huggingface(
                    self.tokenizer,
                    vocab_size=self.model.get_output_embeddings().weight.shape[0],
                    stop_token_ids=self.eos_token_ids,
                )
                self._grammar_compiler = xgr.GrammarCompiler(info)
            # Compact JSON: free whitespace lets a weak model pad forever instead of closing braces.
            grammar = xgr.Grammar.from_json_schema(key, any_whitespace=False)
            ebnf = str(grammar)
            if _BOUNDED_STRING_CHAR in ebnf:
                grammar = xgr.Grammar.from_ebnf(
                    ebnf.replace(_BOUNDED_STRING_CHAR, _JSON_STRING_CHAR)
                )
            self._grammars[key] = self._grammar_compiler.compile_grammar(grammar)
        return self._grammars[key]

    def _generate_batch(
        self,
        prompts: list[str],
        params: SamplingParams,
        grammars: list[Any],
        streamer: StepCounter | None = None,
    ) -> list[Generation]:
        from transformers import GenerationConfig, LogitsProcessorList

        # A chat template already places any BOS it wants; the plain fallback relies on the
        # tokenizer's own special tokens.
        encoded = self.tokenizer(
            prompts,
            return_tensors="pt",
            padding=True,
            add_special_tokens=not self.tokenizer.chat_template,
        ).to(self.device)
        sample = params.temperature > 0
        rows = _rows_per_prompt(params)
        config = GenerationConfig(
            max_new_tokens=params.max_tokens,
            num_return_sequences=rows,
            do_sample=sample,
            temperature=params.temperature if sample else None,
            top_p=params.top_p if sample else None,
            top_k=0 if sample else None,  # generate() would otherwise apply a top-k of 50
        )
        processors = LogitsProcessorList()
        if any(grammar is not None for grammar in grammars):
            import xgrammar as xgr

            # One grammar per output row: generate() lays out the rows of a prompt side by side.
            per_row = [grammar for grammar in grammars for _ in range(rows)]
            processors.append(xgr.contrib.hf.LogitsProcessor(per_row))
        # Typed loosely: mypy sees nn.Module.__getattr__ here, not GenerationMixin.generate.
        generate: Any = self.model.generate
        output: torch.Tensor = generate(
            **encoded, generation_config=config, logits_processor=processors, streamer=streamer
        )
        new_tokens = output[:, encoded["input_ids"].shape[1] :]
        prompt_lengths = encoded["attention_mask"].sum(dim=1).tolist()

        generations = []
        for i, prompt_tokens in enumerate(prompt_lengths):
            completions = [
                self._completion(row, params.max_tokens)
                for row in new_tokens[i * rows : (i + 1) * rows]
            ]
            if len(completions) < params.n:
                completions *= params.n  # greedy: the n completions are one and the same
            generations.append(
                Generation(prompt_tokens=int(prompt_tokens), completions=completions)
            )
        return generations

    def _completion(self, row: torch.Tensor, max_tokens: int) -> Completion:
        """Decode one generated row, counting tokens up to and including the first EOS."""
        import torch

        is_eos = torch.isin(row, torch.tensor(self.eos_token_ids, device=row.device))
        hits = is_eos.nonzero()
        # A row of a batch that stopped early is padded after its EOS, so the first EOS is its
        # end; a row without one ran as long as the batch did, which only max_tokens ends.
        length = int(hits[0, 0]) + 1 if len(hits) else row.shape[0]
        stopped = bool(len(hits)) or length < max_tokens
        text = self.tokenizer.decode(row[:length].tolist(), skip_special_tokens=True)
        return Completion(
            text=str(text), completion_tokens=length, finish_reason="stop" if stopped else "length"
        )
