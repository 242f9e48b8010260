"""Engine on any OpenAI-compatible chat-completions endpoint (vllm serve, SGLang, a hosted model).

`base_url` follows the OpenAI SDK convention: it is the API root *including* the version path
(`http://host:8000/v1`), and requests go to `base_url + "/chat/completions"`; a trailing slash is
ignored and nothing is appended for you (hosted APIs use other roots, e.g. `/v1beta/openai`).
"""

from __future__ import annotations

import logging
import random
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from workers.engines.base import (
    Completion,
    Generation,
    Message,
    RequestRejectedError,
    SamplingParams,
    check_sampling_params,
    continues_final_message,
    finish_reason_of,
    schemas_for,
)
from workers.engines.options import OpenAIOptions
from workers.engines.tokens import count_with_tokenizer, estimate_tokens

log = logging.getLogger(__name__)

_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_MAX_RETRY_AFTER_S = 60.0
"""A server's Retry-After is honoured up to this long; beyond it a worker would look hung."""

# "n must be 1 ...", "'n' is not supported", "Unsupported value: `n`": the word n on its own.
_N_WORD = re.compile(r"(?<![\w.-])['\"`]?n['\"`]?(?![\w-])")


class OpenAIEngineError(Exception):
    """A chat-completions request failed for good: a client error, or retries exhausted."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class OpenAIRejectedError(OpenAIEngineError, RequestRejectedError):
    """The server answered a 4xx (other than 408 and 429): its message says what it refused."""


class _RetryableError(Exception):
    """A failure worth another try (429, 5xx, timeout, connection error)."""

    def __init__(self, message: str, *, status_code: int | None, retry_after_s: float | None):
        super().__init__(message)
        self.status_code = status_code
        self.retry_after_s = retry_after_s


class _NRejectedError(Exception):
    """The server answered 400 to n > 1: sample one completion per request instead."""


@dataclass(frozen=True)
class _Reply:
    prompt_tokens: int | None
    completions: list[Completion]


# OpenAI's strict mode takes a subset of JSON Schema (no minLength, maxLength, minItems, ...):
# keywords outside it are dropped, so a judge's length bounds (a decoding aid for local engines)
# do not get the request refused; its parsers enforce the same bounds after parsing.
_STRICT_KEYWORDS = frozenset(
    {"type", "properties", "required", "additionalProperties", "enum", "items", "anyOf"}
    | {"const", "description"}
)


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema as OpenAI's strict mode takes it: only the keywords it supports, and every
    object closed (additionalProperties false) with all its properties required."""
    strict = {key: value for key, value in schema.items() if key in _STRICT_KEYWORDS}
    if "properties" in strict:
        strict["properties"] = {
            name: strict_schema(subschema) for name, subschema in strict["properties"].items()
        }
    if strict.get("type") == "object":
        strict["required"] = list(strict.get("properties", {}))
        strict["additionalProperties"] = False
    if "items" in strict:
        strict["items"] = strict_schema(strict["items"])
    if "anyOf" in strict:
        strict["anyOf"] = [strict_schema(subschema) for subschema in strict["anyOf"]]
    return strict


def _error_message(response: httpx.Response) -> str:
    """The server's own error text: OpenAI's {"error": {"message"}}, else FastAPI's detail."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        for key in ("message", "detail"):
            if body.get(key):
                return str(body[key])
    return str(body)[:500]


def _rejects_n(response: httpx.Response, message: str) -> bool:
    """Whether a 400 answer is about the `n` parameter."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("param") == "n":
        return True
    return bool(_N_WORD.search(message))


def _retry_after_s(response: httpx.Response) -> float | None:
    """Retry-After in seconds (the HTTP-date form is ignored), capped at _MAX_RETRY_AFTER_S."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER_S)


def split_completion_tokens(total: int, texts: list[str]) -> list[int]:
    """Share a usage total among choices in proportion to text length, summing to the total.

    Servers report one `completion_tokens` for all n choices; longer texts took more tokens.
    Largest-remainder rounding keeps the sum exact; all-empty texts share it evenly.
    """
    if not texts:
        return []
    weights = [len(text) for text in texts]
    if sum(weights) == 0:
        weights = [1] * len(texts)
    scale = sum(weights)
    exact = [total * w / scale for w in weights]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(texts)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


class OpenAIEngine:
    """Chat completions over HTTP: every conversation of a call in flight at once, up to a bound."""

    def __init__(self, *, model_name: str, options: OpenAIOptions) -> None:
        """Connect lazily to `options.base_url` (the API root with its version)."""
        if not model_name:
            raise ValueError(f"model_name: must be a non-empty string, got {model_name!r}")
        base_url, api_key = options.base_url, options.api_key
        max_concurrency, timeout_s = options.max_concurrency, options.timeout_s

        self.model_name = model_name
        self.supports_json_schema = options.supports_json_schema
        self.base_url = base_url
        self.served_model = options.served_model or model_name
        self.max_concurrency = max_concurrency
        self.max_retries = options.max_retries
        self.retry_backoff_s = options.retry_backoff_s
        self.tokenizer_path = options.tokenizer
        self._supports_n = options.supports_n
        self._tokenizer: Any = None
        self._tokenizer_lock = threading.Lock()

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            limits=httpx.Limits(
                max_connections=max_concurrency, max_keepalive_connections=max_concurrency
            ),
        )
        # One pool per engine, not per call: the bound holds across jobs sharing this engine.
        self._pool = ThreadPoolExecutor(max_concurrency, thread_name_prefix="openai-engine")

    @property
    def supports_n(self) -> bool:
        """False once the server has refused n > 1 (or when configured so)."""
        return self._supports_n

    def close(self) -> None:
        """Close the connection pool and the request threads."""
        self._pool.shutdown(wait=True)
        self._client.close()

    def __enter__(self) -> OpenAIEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Exact with the local `tokenizer` folder; else ceil(chars / 4), an estimate that is
        only used for the pair length filter."""
        if not texts:
            return []
        tokenizer = self._loaded_tokenizer()
        if tokenizer is None:
            return estimate_tokens(texts)
        return count_with_tokenizer(tokenizer, texts)

    def _loaded_tokenizer(self) -> Any:
        if self.tokenizer_path is None:
            return None
        with self._tokenizer_lock:
            if self._tokenizer is None:
                from transformers import AutoTokenizer

                self._tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_path)
            return self._tokenizer

    def generate(
        self, conversations: list[list[Message]], params: SamplingParams
    ) -> list[Generation]:
        """Return one Generation (with params.n completions) per conversation, in order.

        With n > 1 on a server without `n`, each conversation gets n requests of n=1 whose seeds
        (when set) are seed, seed+1, ... so they do not all sample the same text.
        """
        check_sampling_params(params)
        if not conversations:
            return []
        schemas = schemas_for(params, len(conversations))
        replies: list[list[_Reply]] = [[] for _ in conversations]

        # First round: n in one request where the server takes it.
        first: dict[int, Future[_Reply]] = {}
        if params.n == 1 or self._supports_n:
            for i, conversation in enumerate(conversations):
                first[i] = self._pool.submit(
                    self._request, conversation, schemas[i], params, params.n, 0
                )
        errors: list[Exception] = []
        for i, future in first.items():
            try:
                replies[i].append(future.result())
            except _NRejectedError:
                pass  # sampled one by one below
            except Exception as error:  # re-raised once every request of the round is done
                errors.append(error)
        if errors:
            raise errors[0]

        # Second round: the missing completions one per request (no `n`, or fewer choices).
        rest: list[tuple[int, Future[_Reply]]] = []
        for i in range(len(conversations)):
            have = sum(len(reply.completions) for reply in replies[i])
            for k in range(have, params.n):
                future = self._pool.submit(
                    self._request, conversations[i], schemas[i], params, 1, k
                )
                rest.append((i, future))
        for i, future in rest:
            try:
                replies[i].append(future.result())
            except Exception as error:  # re-raised once every request of the round is done
                errors.append(error)
        if errors:
            raise errors[0]

        return [
            self._generation(conversation, reply_list, params.n)
            for conversation, reply_list in zip(conversations, replies, strict=True)
        ]

    def _generation(self, conversation: list[Message], replies: list[_Reply], n: int) -> Generation:
        completions = [c for reply in replies for c in reply.completions][:n]
        if len(completions) < n:
            raise OpenAIEngineError(
                f"n: asked for {n} completions, the server returned {len(completions)}"
            )
        prompt_tokens = next((r.prompt_tokens for r in replies if r.prompt_tokens), None)
        if prompt_tokens is None:
            prompt_tokens = sum(self.count_tokens([m["content"] for m in conversation]))
        return Generation(prompt_tokens=prompt_tokens, completions=completions)

    def _body(
        self,
        conversation: list[Message],
        schema: dict[str, Any] | None,
        params: SamplingParams,
        n: int,
        index: int,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.served_model,
            "messages": conversation,
            "n": n,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
        }
        if continues_final_message(conversation):
            # vLLM's and SGLang's servers finish the assistant message instead of replying.
            body |= {"add_generation_prompt": False, "continue_final_message": True}
        if params.seed is not None:
            body["seed"] = params.seed + index
        if schema is not None and self.supports_json_schema:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "reply", "schema": strict_schema(schema), "strict": True},
            }
        return body

    def _request(
        self,
        conversation: list[Message],
        schema: dict[str, Any] | None,
        params: SamplingParams,
        n: int,
        index: int,
    ) -> _Reply:
        """One chat completion request, retried on 429, 5xx, timeouts and connection errors."""
        body = self._body(conversation, schema, params, n, index)
        retrying = Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            retry=retry_if_exception_type(_RetryableError),
            wait=self._wait,
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            payload = retrying(self._post, body)
        except _RetryableError as error:
            raise OpenAIEngineError(
                f"{self.base_url}/chat/completions: gave up after {self.max_retries} retries: "
                f"{error}",
                status_code=error.status_code,
            ) from error
        return self._reply(payload, n)

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._client.post("/chat/completions", json=body)
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as error:
            raise _RetryableError(
                f"{type(error).__name__}: {error}", status_code=None, retry_after_s=None
            ) from error
        if response.is_success:
            try:
                payload = response.json()
            except ValueError as error:
                raise OpenAIEngineError(
                    f"{self.base_url}/chat/completions: status {response.status_code} with a "
                    f"body that is not JSON: {response.text[:200]!r}",
                    status_code=response.status_code,
                ) from error
            if not isinstance(payload, dict):
                raise OpenAIEngineError(
                    f"{self.base_url}/chat/completions: expected a JSON object, got {payload!r}"
                )
            return payload
        message = _error_message(response)
        status = response.status_code
        if status in _RETRY_STATUSES:
            raise _RetryableError(
                f"status {status}: {message}",
                status_code=status,
                retry_after_s=_retry_after_s(response),
            )
        if status == 400 and body["n"] > 1 and _rejects_n(response, message):
            if self._supports_n:
                log.warning(
                    "%s rejects n > 1 (%s); sampling one completion per request from now on",
                    self.base_url,
                    message,
                )
            self._supports_n = False
            raise _NRejectedError(message)
        hint = " (does base_url end with the API version, e.g. /v1?)" if status == 404 else ""
        kind = OpenAIRejectedError if 400 <= status < 500 else OpenAIEngineError
        raise kind(
            f"{self.base_url}/chat/completions: status {status}: {message}{hint}",
            status_code=status,
        )

    def _wait(self, state: RetryCallState) -> float:
        """Retry-After when the server sent one, else exponential backoff with full jitter."""
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, _RetryableError) and error.retry_after_s is not None:
            return error.retry_after_s
        ceiling = min(30.0, self.retry_backoff_s * 2 ** (state.attempt_number - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        sleep = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "%s/chat/completions: %s; retry %d of %d in %.1f s",
            self.base_url,
            error,
            state.attempt_number,
            self.max_retries,
            sleep,
        )

    def _reply(self, payload: dict[str, Any], n: int) -> _Reply:
        """Completions and token counts from a chat.completion object."""
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices:
            raise OpenAIEngineError(
                f"{self.base_url}/chat/completions: no choices in the answer: {str(payload)[:300]}"
            )
        ordered = sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0)
        texts: list[str] = []
        reasons: list[object] = []
        for choice in ordered[:n]:
            message = choice.get("message") if isinstance(choice, dict) else None
            content = message.get("content") if isinstance(message, dict) else None
            texts.append(content if isinstance(content, str) else "")
            reasons.append(choice.get("finish_reason") if isinstance(choice, dict) else None)
        if len(texts) < n:
            if self._supports_n and n > 1:
                log.warning(
                    "%s returned %d of n=%d choices; sampling one completion per request from now "
                    "on",
                    self.base_url,
                    len(texts),
                    n,
                )
            self._supports_n = False

        usage = payload.get("usage")
        prompt_tokens = _int_or_none(usage, "prompt_tokens")
        completion_total = _int_or_none(usage, "completion_tokens")
        counts: list[int]
        if completion_total is None:
            counts = self.count_tokens(texts)
        else:
            counts = split_completion_tokens(completion_total, texts)
        return _Reply(
            prompt_tokens=prompt_tokens,
            completions=[
                Completion(t, c, finish_reason_of(r))
                for t, c, r in zip(texts, counts, reasons, strict=True)
            ],
        )


def _int_or_none(usage: Any, key: str) -> int | None:
    value = usage.get(key) if isinstance(usage, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
