"""First wrong steps from Monte-Carlo rollouts (Math-Shepherd's estimate, OmegaPRM's bisection).

From a prefix of an answer's first k steps, the policy finishes the answer M times and a
verifier checks each finished answer. A prefix with a successful continuation is good; one
with none, bad. The first wrong step is the first step whose prefix is bad, after a good one.

The search is a pure function of the estimates stored so far, so a chunk killed mid-search
resumes where its stored estimates leave off; each round is one batched engine call for every
answer still searching.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from typing import Literal

from app.kernel.steps import Step, segment_steps
from workers.engines.base import Engine, Message, SamplingParams
from workers.prompts.policy import build_policy_messages

SEARCHES = ("bisection", "linear")
PrefixState = Literal["good", "bad", "unknown"]
Verify = Callable[[Sequence[tuple[int, str]]], list[bool | None]]
"""Checks finished answers, given as (sample_id, full answer text): True (correct final
answer), False (wrong), None (cannot tell, e.g. an unparseable judge reply)."""


@dataclass(frozen=True)
class PrefixEstimate:
    """The rollouts of one prefix: M continuations, how many succeeded, how many are unknown."""

    prefix_steps: int
    rollouts: int
    successes: int
    unknown: int
    successful: tuple[str, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def state(self) -> PrefixState:
        """good: some continuation succeeded; bad: all M failed; unknown: none succeeded but
        some were cut at max_tokens, and a cut continuation might have succeeded."""
        if self.successes > 0:
            return "good"
        return "unknown" if self.unknown > 0 else "bad"

    @property
    def success_rate(self) -> float:
        return self.successes / self.rollouts if self.rollouts else 0.0


@dataclass(frozen=True)
class SearchState:
    """Where a search stands: the prefix to roll out next, or (when None) its outcome."""

    next_prefix: int | None
    outcome: str | None = None
    """parsed (first_wrong found), no_step_error (every step's prefix is good: only the final
    answer is wrong), no_success (the question alone has no success), undecided."""
    first_wrong: int | None = None


def search(step_count: int, estimates: dict[int, PrefixEstimate], method: str) -> SearchState:
    """The next prefix to roll out given the estimates so far, or the search's outcome."""
    if method not in SEARCHES:
        raise ValueError(f"method: must be one of {SEARCHES}, got {method!r}")
    if 0 not in estimates:
        return SearchState(0)
    start = estimates[0].state
    if start != "good":
        return SearchState(None, "no_success" if start == "bad" else "undecided")
    if method == "linear":
        return _linear(step_count, estimates)
    return _bisection(step_count, estimates)


def _linear(step_count: int, estimates: dict[int, PrefixEstimate]) -> SearchState:
    """Every prefix from the first step on, until one is not good."""
    for k in range(1, step_count + 1):
        if k not in estimates:
            return SearchState(k)
        state = estimates[k].state
        if state == "bad":
            return SearchState(None, "parsed", k)
        if state == "unknown":
            return SearchState(None, "undecided")
    return SearchState(None, "no_step_error")


def _bisection(step_count: int, estimates: dict[int, PrefixEstimate]) -> SearchState:
    """Halve the range between the last good prefix and the first bad one (the whole answer,
    final line included, is known bad: it was judged wrong)."""
    good, bad = 0, step_count + 1
    while bad - good > 1:
        middle = (good + bad) // 2
        if middle not in estimates:
            return SearchState(middle)
        state = estimates[middle].state
        if state == "unknown":
            return SearchState(None, "undecided")
        if state == "good":
            good = middle
        else:
            bad = middle
    if bad == step_count + 1:
        return SearchState(None, "no_step_error")
    return SearchState(None, "parsed", bad)


def most_rounds(step_count: int, method: str) -> int:
    """The most rounds a search of an answer with this many steps can take: the question alone,
    then every step (linear) or a halving of the steps and final answer (bisection)."""
    if method == "linear":
        return 1 + step_count
    return 1 + (step_count).bit_length()  # ceil(log2(step_count + 1)) probes


@dataclass(frozen=True)
class RolloutAnswer:
    """A wrong answer under search, with its steps as the service numbers them."""

    sample_id: int
    question: str
    answer: str
    steps: tuple[Step, ...]

    @classmethod
    def of(cls, sample_id: int, question: str, answer: str) -> RolloutAnswer:
        return cls(sample_id, question, answer, tuple(segment_steps(answer)))

    def prefix(self, steps: int) -> str:
        """The answer's text through its first `steps` steps, ready for the next step."""
        if steps == 0:
            return ""
        return self.answer[: self.steps[steps - 1].end] + "\n"


def continuation_messages(question: str, prefix: str) -> list[Message]:
    """The policy's own conversation, with the prefix as the start of its reply to finish."""
    messages = build_policy_messages(question)
    if prefix:
        messages.append({"role": "assistant", "content": prefix})
    return messages


def roll_out(
    engine: Engine,
    asks: Sequence[tuple[RolloutAnswer, int]],
    params: SamplingParams,
    verify: Verify,
) -> list[PrefixEstimate]:
    """One batched engine call: params.n continuations of each (answer, prefix), verified."""
    if not asks:
        return []
    prefixes = [answer.prefix(k) for answer, k in asks]
    conversations = [
        continuation_messages(answer.question, prefix)
        for (answer, _), prefix in zip(asks, prefixes, strict=True)
    ]
    generations = engine.generate(conversations, params)
    finished: list[tuple[int, str]] = []
    for (answer, _), prefix, generation in zip(asks, prefixes, generations, strict=True):
        finished += [
            (answer.sample_id, prefix + c.text)
            for c in generation.completions
            if c.finish_reason != "length"
        ]
    verdicts = iter(verify(finished))
    estimates = []
    for (_, k), generation in zip(asks, generations, strict=True):
        successes, unknown, successful = 0, 0, []
        for completion in generation.completions:
            verdict = None if completion.finish_reason == "length" else next(verdicts)
            if verdict is None:
                unknown += 1
            elif verdict:
                successes += 1
                successful.append(completion.text)
        estimates.append(
            PrefixEstimate(
                prefix_steps=k,
                rollouts=len(generation.completions),
                successes=successes,
                unknown=unknown,
                successful=tuple(successful),
                prompt_tokens=generation.prompt_tokens,
                completion_tokens=sum(c.completion_tokens for c in generation.completions),
            )
        )
    return estimates


def correction_step(answer: RolloutAnswer, good_prefix: int, continuation: str) -> str | None:
    """The first step a successful continuation wrote after the good prefix, or None when it
    went straight to its final answer."""
    prefix = answer.prefix(good_prefix)
    for step in segment_steps(prefix + continuation):
        if step.start >= len(prefix) and step.text.strip():
            return step.text
    return None


@dataclass(frozen=True)
class RolloutLabel:
    """A wrong answer's first wrong step as the rollouts found it, and its correction."""

    sample_id: int
    outcome: str
    first_wrong: int | None
    correct_prefix: str | None
    wrong_step: str | None
    correction: str | None
    reason: str


def label(answer: RolloutAnswer, estimates: dict[int, PrefixEstimate], method: str) -> RolloutLabel:
    """The finished search's label: the first wrong step, the text before it, and the first
    step of a successful continuation from the last good prefix (on-policy, verified)."""
    state = search(len(answer.steps), estimates, method)
    if state.next_prefix is not None:
        raise ValueError(f"sample {answer.sample_id}: search not finished")
    reasons = {
        "no_success": "no continuation of the question alone succeeded: no prefix is known good",
        "undecided": "a prefix had no success but continuations cut at max_tokens: unknown",
        "no_step_error": "every step's prefix has a successful continuation: only the final "
        "answer is wrong",
    }
    if state.outcome != "parsed" or state.first_wrong is None:
        outcome = state.outcome or "undecided"
        return RolloutLabel(answer.sample_id, outcome, None, None, None, None, reasons[outcome])
    wrong = state.first_wrong
    good = estimates[wrong - 1]
    correction = next(
        (
            step
            for text in good.successful
            if (step := correction_step(answer, wrong - 1, text)) is not None
        ),
        None,
    )
    bad = estimates[wrong]
    reason = (
        f"prefix through step {wrong - 1}: {good.successes}/{good.rollouts} succeeded; "
        f"through step {wrong}: {bad.successes}/{bad.rollouts}"
    )
    if correction is None:
        reason += "; no successful continuation wrote a next step, so no correction"
    return RolloutLabel(
        answer.sample_id,
        "parsed",
        wrong,
        answer.prefix(wrong - 1).rstrip("\n"),
        answer.steps[wrong - 1].text,
        correction,
        reason,
    )


def run_search(
    engine: Engine,
    answers: Sequence[RolloutAnswer],
    params: SamplingParams,
    verify: Verify,
    method: str,
    *,
    known: dict[int, dict[int, PrefixEstimate]] | None = None,
    store: Callable[[list[tuple[int, PrefixEstimate]]], None] | None = None,
    round_call: Callable[[int], AbstractContextManager[object]] | None = None,
) -> dict[int, dict[int, PrefixEstimate]]:
    """Search every answer to its end, one batched engine call per round; `known`: estimates
    stored by an earlier run, `store`: called with each round's new (sample_id, estimate),
    `round_call`: a context around each round's engine call, given the round's number."""
    estimates = {a.sample_id: dict((known or {}).get(a.sample_id, {})) for a in answers}
    round_number = 0
    while True:
        asks = [
            (answer, state.next_prefix)
            for answer in answers
            if (state := search(len(answer.steps), estimates[answer.sample_id], method)).next_prefix
            is not None
        ]
        if not asks:
            return estimates
        with (round_call or (lambda _: nullcontext()))(round_number):
            found = roll_out(engine, asks, params, verify)
        for (answer, _), estimate in zip(asks, found, strict=True):
            estimates[answer.sample_id][estimate.prefix_steps] = estimate
        if store is not None:
            store([(answer.sample_id, e) for (answer, _), e in zip(asks, found, strict=True)])
        if params.seed is not None:
            params = replace(params, seed=params.seed + 1)
        round_number += 1
