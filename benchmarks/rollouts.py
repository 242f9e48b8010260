"""What bisection saves over linear search, and whether both name the same first wrong step.

Workload (fixed, seeded): for each of the demo's questions (app/examples/finance_mc.jsonl), a
wrong answer of 6 to 10 steps with one planted error: steps before it restate the question, the
planted step names a wrong option as the result, the steps after it build on that. The policy
(SmolLM2 by default) finishes the answers' prefixes M times at temperature 1.0 from a fixed seed;
the batch's verifier checks them: `rule` (the final letter against the reference, as a rule
batch does) or `planted` (deterministic: a finished answer succeeds unless it holds the planted
step, which isolates the search from the policy's noise). Both searches run on the same
answers; the figures are rollouts per labelled answer for each, their ratio, and how often both
label an answer with the same step.

    python -m benchmarks.rollouts                              # hf, rule verifier, minutes on CPU
    python -m benchmarks.rollouts --verifier planted --engine vllm --questions 12
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from app.kernel.config import get_settings
from workers.engines.base import Engine, SamplingParams
from workers.engines.registry import load_engine
from workers.rollouts import PrefixEstimate, RolloutAnswer, Verify, label, run_search
from workers.rule_judge import judge_by_rule

EXAMPLES = Path(__file__).resolve().parents[1] / "app" / "examples" / "finance_mc.jsonl"
LETTERS = ("A", "B", "C")


@dataclass(frozen=True)
class Planted:
    """A seeded wrong answer and where its error is."""

    answer: RolloutAnswer
    reference: str
    wrong_step: int


def planted_answer(sample_id: int, question: str, reference: str, rng: random.Random) -> Planted:
    """A wrong answer of 6 to 10 steps whose planted step picks a wrong option."""
    steps = rng.randint(6, 10)
    wrong_at = rng.randint(1, steps)
    wrong = rng.choice([letter for letter in LETTERS if letter != reference])
    options = [line for line in question.splitlines()[1:] if line.strip()]
    facts = [f"The question says: {question.splitlines()[0]}"]
    facts += [f"One option is {option}." for option in options]
    facts += ["We compare each option with what the question gives.", "We check the units."]
    lines = []
    for number in range(1, steps + 1):
        if number < wrong_at:
            text = facts[(number - 1) % len(facts)]
        elif number == wrong_at:
            text = f"Working it out, the result matches option {wrong}."
        else:
            text = f"Since the result matches option {wrong}, we keep option {wrong}."
        lines.append(f"Step {number}: {text}")
    text = "\n".join([*lines, f"Answer: {wrong}"])
    return Planted(RolloutAnswer.of(sample_id, question, text), reference, wrong_at)


def workload(questions: int, seed: int) -> list[Planted]:
    rng = random.Random(seed)
    rows = [json.loads(line) for line in EXAMPLES.read_text().splitlines()][:questions]
    return [
        planted_answer(i, row["question"], row["reference_answer"], rng)
        for i, row in enumerate(rows)
    ]


def verifier(planted: list[Planted], kind: str) -> Verify:
    by_id = {p.answer.sample_id: p for p in planted}

    def verify(finished: Sequence[tuple[int, str]]) -> list[bool | None]:
        if kind == "planted":
            return [
                by_id[i].answer.steps[by_id[i].wrong_step - 1].text not in text
                for i, text in finished
            ]
        return [
            judge_by_rule(text, by_id[i].reference).verdict == "correct" for i, text in finished
        ]

    return verify


@dataclass(frozen=True)
class SearchRun:
    method: str
    estimates: dict[int, dict[int, PrefixEstimate]]
    seconds: float
    calls: int

    def rollouts(self) -> int:
        return sum(e.rollouts for found in self.estimates.values() for e in found.values())


class CallCounter:
    """The engine, counting its calls (one per search round)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.model_name = engine.model_name
        self.supports_json_schema = engine.supports_json_schema
        self.calls = 0

    def generate(self, conversations, params):  # type: ignore[no-untyped-def]
        self.calls += 1
        return self.engine.generate(conversations, params)

    def count_tokens(self, texts: list[str]) -> list[int]:
        return self.engine.count_tokens(texts)


def run(engine: Engine, planted: list[Planted], params: SamplingParams, kind: str, method: str):  # type: ignore[no-untyped-def]
    counter = CallCounter(engine)
    since = time.time()
    estimates = run_search(
        counter, [p.answer for p in planted], params, verifier(planted, kind), method
    )
    return SearchRun(method, estimates, time.time() - since, counter.calls)


def main(
    engine_name: Annotated[str, typer.Option("--engine", help="hf or vllm.")] = "hf",
    model: Annotated[str, typer.Option(help="Registered policy model.")] = "smollm2-135m-instruct",
    questions: Annotated[int, typer.Option(help="Demo questions used (1 to 12).")] = 12,
    rollouts_per_step: Annotated[int, typer.Option(help="M.")] = 8,
    max_tokens: Annotated[int, typer.Option(help="Continuation limit.")] = 64,
    verifier_kind: Annotated[str, typer.Option("--verifier", help="rule or planted.")] = "rule",
    seed: int = 0,
) -> None:
    """Print rollouts per labelled answer for bisection and linear, and their agreement."""
    settings = get_settings()
    engine = load_engine(
        engine=engine_name,
        model=model,
        models_dir=settings.models_dir,
        device=settings.device,
        options=settings.engine_options.get(engine_name, {}),
    )
    planted = workload(questions, seed)
    params = SamplingParams(n=rollouts_per_step, temperature=1.0, max_tokens=max_tokens, seed=seed)
    runs = {m: run(engine, planted, params, verifier_kind, m) for m in ("bisection", "linear")}
    labels = {
        m: {
            p.answer.sample_id: label(p.answer, r.estimates[p.answer.sample_id], m) for p in planted
        }
        for m, r in runs.items()
    }
    steps = [len(p.answer.steps) for p in planted]
    print(
        f"{len(planted)} wrong answers of {min(steps)}-{max(steps)} steps, M={rollouts_per_step}, "
        f"max_tokens={max_tokens}, verifier={verifier_kind}, engine={engine_name}"
    )
    for method, found in runs.items():
        outcomes = [lab.outcome for lab in labels[method].values()]
        labelled = outcomes.count("parsed")
        on_planted = sum(
            labels[method][p.answer.sample_id].first_wrong == p.wrong_step for p in planted
        )
        per = found.rollouts() / labelled if labelled else float("nan")
        print(
            f"{method:9}: {found.rollouts()} rollouts, {labelled} labelled "
            f"({per:.1f} per labelled answer), {found.calls} engine calls, "
            f"{found.seconds:.0f} s; planted step found {on_planted}/{len(planted)}; "
            f"outcomes {dict(sorted((o, outcomes.count(o)) for o in set(outcomes)))}"
        )
    both = [
        i
        for i in labels["bisection"]
        if labels["bisection"][i].outcome == labels["linear"][i].outcome == "parsed"
    ]
    same = sum(labels["bisection"][i].first_wrong == labels["linear"][i].first_wrong for i in both)
    ratio = runs["bisection"].rollouts() / max(1, runs["linear"].rollouts())
    # Math-Shepherd labels every step: every prefix of every answer, M continuations each.
    every = sum((len(p.answer.steps) + 1) * rollouts_per_step for p in planted)
    print(f"bisection / linear rollouts: {ratio:.2f}")
    print(
        f"every prefix (Math-Shepherd's labelling) would take {every}: bisection / that = "
        f"{runs['bisection'].rollouts() / every:.2f}"
    )
    print(f"same first wrong step where both labelled: {same}/{len(both)}")


if __name__ == "__main__":
    typer.run(main)
