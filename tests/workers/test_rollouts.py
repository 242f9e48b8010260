"""Prefix search by rollouts on a real (tiny) model: the continuations are the model's own,
the verifier is deterministic, so the planted first wrong step is known."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.tiny_model import make_replies_short
from workers.engines.base import Generation, Message, SamplingParams
from workers.engines.hf import HFEngine
from workers.rollouts import (
    PrefixEstimate,
    RolloutAnswer,
    correction_step,
    label,
    most_rounds,
    run_search,
    search,
)

PLANTED = "2 + 2 makes 5"


def planted_answer(sample_id: int, steps: int, wrong: int) -> RolloutAnswer:
    """An answer of `steps` steps whose step `wrong` is the planted error."""
    lines = [
        f"Step {n}: {PLANTED}." if n == wrong else f"Step {n}: fact number {n} holds."
        for n in range(1, steps + 1)
    ]
    return RolloutAnswer.of(sample_id, "What is 2 + 2?", "\n".join([*lines, "Answer: A"]))


def verify_without_planted(finished: Sequence[tuple[int, str]]) -> list[bool | None]:
    """Deterministic: a finished answer succeeds unless it still holds the planted error."""
    return [PLANTED not in text for _, text in finished]


class CountingEngine:
    """The real engine, counting the conversations of each call."""

    def __init__(self, engine: HFEngine) -> None:
        self.engine = engine
        self.model_name = engine.model_name
        self.supports_json_schema = engine.supports_json_schema
        self.calls: list[list[list[Message]]] = []

    def generate(
        self, conversations: list[list[Message]], params: SamplingParams
    ) -> list[Generation]:
        self.calls.append(conversations)
        return self.engine.generate(conversations, params)

    def count_tokens(self, texts: list[str]) -> list[int]:
        return self.engine.count_tokens(texts)


@pytest.fixture(scope="module")
def short_reply_engine(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> HFEngine:
    path = tmp_path_factory.mktemp("short") / "model"
    shutil.copytree(tiny_model_dir, path)
    make_replies_short(path)
    return HFEngine(model_name="tiny-short", path=str(path))


PARAMS = SamplingParams(n=4, temperature=1.0, max_tokens=64, seed=7)
CASES = [(1, 6, 1), (2, 6, 4), (3, 7, 6), (4, 8, 3), (5, 10, 9), (6, 12, 12)]


@pytest.mark.parametrize("method", ["bisection", "linear"])
def test_search_finds_the_planted_first_wrong_step(
    short_reply_engine: HFEngine, method: str
) -> None:
    engine = CountingEngine(short_reply_engine)
    answers = [planted_answer(i, steps, wrong) for i, steps, wrong in CASES]

    estimates = run_search(engine, answers, PARAMS, verify_without_planted, method)

    for answer, (_, _, wrong) in zip(answers, CASES, strict=True):
        found = label(answer, estimates[answer.sample_id], method)
        assert found.outcome == "parsed", found.reason
        assert found.first_wrong == wrong
        assert found.wrong_step == f"Step {wrong}: {PLANTED}."
        assert estimates[answer.sample_id][wrong].successes == 0
        assert estimates[answer.sample_id][wrong - 1].successes == PARAMS.n
        assert found.correct_prefix == answer.prefix(wrong - 1).rstrip("\n")
    # One engine call per round, every answer still searching in it; the continued prefix
    # is the assistant's unfinished reply.
    assert all(len(call) <= len(CASES) for call in engine.calls)
    last = engine.calls[0][-1][-1]
    assert last["role"] == "user"  # round 1: the question alone (prefix 0)
    continued = engine.calls[1][0][-1]
    assert continued["role"] == "assistant" and continued["content"].startswith("Step 1:")


def test_bisection_rolls_out_fewer_prefixes_than_linear_on_long_answers(
    short_reply_engine: HFEngine,
) -> None:
    answers = [planted_answer(1, 12, 11), planted_answer(2, 16, 14)]
    visited = {}
    for method in ("bisection", "linear"):
        estimates = run_search(short_reply_engine, answers, PARAMS, verify_without_planted, method)
        visited[method] = sum(len(found) for found in estimates.values())
        assert [label(a, estimates[a.sample_id], method).first_wrong for a in answers] == [11, 14]
    assert visited["bisection"] * 2 <= visited["linear"], visited


def test_a_killed_search_resumes_from_the_stored_estimates(
    short_reply_engine: HFEngine,
) -> None:
    answer = planted_answer(1, 8, 5)
    stored: list[tuple[int, PrefixEstimate]] = []
    first = CountingEngine(short_reply_engine)
    full = run_search(
        first, [answer], PARAMS, verify_without_planted, "linear", store=stored.extend
    )
    assert len(first.calls) == 6  # prefixes 0..5
    # Killed after three stored rounds: the rerun asks only for the prefixes not stored.
    known = {1: {e.prefix_steps: e for _, e in stored[:3]}}
    again = CountingEngine(short_reply_engine)
    resumed = run_search(again, [answer], PARAMS, verify_without_planted, "linear", known=known)
    assert len(again.calls) == 3
    assert sorted(resumed[1]) == sorted(full[1])
    assert label(answer, resumed[1], "linear").first_wrong == 5


def estimate(k: int, successes: int, *, unknown: int = 0, rollouts: int = 4) -> PrefixEstimate:
    return PrefixEstimate(k, rollouts, successes, unknown)


def test_no_label_when_the_question_alone_never_succeeds() -> None:
    state = search(5, {0: estimate(0, 0)}, "bisection")
    assert state.next_prefix is None and state.outcome == "no_success"


def test_a_cut_continuation_is_unknown_and_stops_the_search() -> None:
    # Prefix 3 had no success, but one continuation was cut at max_tokens: it might have
    # succeeded, so step 3 is not called wrong.
    estimates = {0: estimate(0, 2), 3: estimate(3, 0, unknown=1)}
    state = search(5, estimates, "bisection")
    assert state.next_prefix is None and state.outcome == "undecided"
    assert search(5, {0: estimate(0, 0, unknown=4)}, "linear").outcome == "undecided"


def test_only_the_final_line_is_wrong_when_every_step_prefix_succeeds() -> None:
    estimates = {k: estimate(k, 1) for k in range(0, 4)}
    assert search(3, estimates, "linear").outcome == "no_step_error"
    assert search(3, estimates, "bisection").outcome == "no_step_error"


def test_the_correction_is_the_next_step_a_successful_continuation_wrote() -> None:
    answer = planted_answer(1, 4, 3)
    continuation = "Step 3: 2 + 2 makes 4.\nStep 4: So B.\nAnswer: B"
    assert correction_step(answer, 2, continuation) == "Step 3: 2 + 2 makes 4."
    # A continuation that goes straight to its answer wrote no step: no correction is forced.
    assert correction_step(answer, 2, "Answer: B") is None
    estimates = {0: estimate(0, 4), 1: estimate(1, 4), 2: estimate(2, 4), 3: estimate(3, 0)}
    estimates[2] = PrefixEstimate(2, 4, 1, 0, ("Answer: B",))
    found = label(answer, estimates, "linear")
    assert found.first_wrong == 3 and found.correction is None


def test_the_hf_engine_continues_the_open_reply(short_reply_engine: HFEngine) -> None:
    prefix = "Step 1: fact number 1 holds.\n"
    rendered = short_reply_engine._render(
        [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": prefix}]
    )
    assert rendered.endswith("<|im_start|>assistant\n" + prefix)


@pytest.mark.parametrize("method", ["bisection", "linear"])
def test_no_search_takes_more_rounds_than_its_bound(method: str) -> None:
    """The progress bar counts a rollout round as 1/most_rounds of the phase: no answer's
    search, wherever its first wrong step is (or none), may take more rounds than that."""
    for steps in range(1, 33):
        for wrong in range(1, steps + 2):  # steps + 1: only the final answer is wrong
            estimates: dict[int, PrefixEstimate] = {}
            rounds = 0
            while (asked := search(steps, estimates, method).next_prefix) is not None:
                good = asked < wrong
                estimates[asked] = PrefixEstimate(asked, 4, 2 if good else 0, 0)
                rounds += 1
            assert rounds <= most_rounds(steps, method), (steps, wrong, rounds)
            assert search(steps, estimates, method).first_wrong == (
                wrong if wrong <= steps else None
            )
