"""Judging a chunk's answers: one batched engine call per stage, retries for unparseable replies."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Generic, TypeVar

from app.kernel.answers import segment_steps
from workers.engines.base import Engine, Message, SamplingParams
from workers.prompts.fap import FAP_SCHEMA, FapResult, build_fap_messages, parse_fap
from workers.prompts.scp import (
    SCP_SCHEMA,
    SCP_STEPS_PROMPT_VERSION,
    ScpResult,
    build_scp_messages,
    build_scp_steps_messages,
    parse_scp,
    parse_scp_steps,
    scp_steps_schema,
)
from workers.rule_judge import judge_by_rule

ResultT = TypeVar("ResultT", FapResult, ScpResult)


@dataclass(frozen=True)
class AnswerToJudge:
    sample_id: int
    question: str
    reference_answer: str
    answer: str


@dataclass(frozen=True)
class Judged(Generic[ResultT]):
    """A parsed (or unparseable) judge reply with the raw text and what it cost."""

    sample_id: int
    result: ResultT
    raw_output: str
    attempts: int
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, kw_only=True)
class JudgeSettings:
    max_tokens: int
    temperature: float
    retries: int
    seed: int | None = None


def judge_final_answers(
    engine: Engine, answers: Sequence[AnswerToJudge], settings: JudgeSettings
) -> list[Judged[FapResult]]:
    """FAP verdicts from an LLM judge, constrained to the FAP schema where the engine can."""
    conversations = [
        build_fap_messages(item.question, item.reference_answer, item.answer) for item in answers
    ]
    parsers = [parse_fap] * len(answers)
    schemas = [FAP_SCHEMA] * len(answers)
    return run_judge(engine, answers, conversations, parsers, schemas, settings)


def judge_final_answers_by_rule(answers: Sequence[AnswerToJudge]) -> list[Judged[FapResult]]:
    """FAP verdicts from the deterministic rule verifier (letters, numbers, exact text)."""
    judged = []
    for item in answers:
        result = judge_by_rule(item.answer, item.reference_answer)
        raw = f"extracted={result.extracted_answer!r} reference={item.reference_answer!r}"
        judged.append(Judged(item.sample_id, result, raw, 1, 0, 0))
    return judged


def analyse_first_errors(
    engine: Engine,
    answers: Sequence[AnswerToJudge],
    settings: JudgeSettings,
    *,
    prompt_version: str,
) -> list[Judged[ScpResult]]:
    """SCP analyses of wrong answers: the first wrong step and its correction."""
    if prompt_version != SCP_STEPS_PROMPT_VERSION:
        conversations = [
            build_scp_messages(item.question, item.reference_answer, item.answer)
            for item in answers
        ]
        parsers: list[Callable[[str], ScpResult]] = [
            partial(parse_scp, answer=item.answer) for item in answers
        ]
        schemas = [SCP_SCHEMA] * len(answers)
        return run_judge(engine, answers, conversations, parsers, schemas, settings)

    steps_of = {item.sample_id: segment_steps(item.answer) for item in answers}
    without_steps = [item for item in answers if not steps_of[item.sample_id]]
    with_steps = [item for item in answers if steps_of[item.sample_id]]
    judged = [
        Judged(
            item.sample_id,
            ScpResult(
                outcome="failed_validation",
                reason="answer has no intermediate steps to analyse",
                correct_prefix=None,
                wrong_step=None,
                correction=None,
                justification=None,
                wrong_step_number=None,
            ),
            "",
            0,
            0,
            0,
        )
        for item in without_steps
    ]
    if with_steps:
        # Each answer gets its own step numbers: a batch-wide maximum would let the judge name
        # a step that this answer does not have.
        step_lists = [steps_of[item.sample_id] for item in with_steps]
        schemas = [scp_steps_schema([step.number for step in steps]) for steps in step_lists]
        conversations = [
            build_scp_steps_messages(item.question, item.reference_answer, item.answer, steps)
            for item, steps in zip(with_steps, step_lists, strict=True)
        ]
        parsers = [
            partial(parse_scp_steps, answer=item.answer, steps=steps)
            for item, steps in zip(with_steps, step_lists, strict=True)
        ]
        judged += run_judge(engine, with_steps, conversations, parsers, schemas, settings)
    order = {item.sample_id: position for position, item in enumerate(answers)}
    return sorted(judged, key=lambda item: order[item.sample_id])


def run_judge(
    engine: Engine,
    answers: Sequence[AnswerToJudge],
    conversations: list[list[Message]],
    parsers: Sequence[Callable[[str], ResultT]],
    schemas: Sequence[dict[str, Any]],
    settings: JudgeSettings,
) -> list[Judged[ResultT]]:
    """Judge everything in one call, then re-ask only the unparseable ones, `retries` times;
    conversation i is held to schemas[i] where the engine can constrain its output."""
    params = SamplingParams(
        n=1,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        seed=settings.seed,
    )
    judged: list[Judged[ResultT] | None] = [None] * len(answers)
    pending = list(range(len(answers)))
    for attempt in range(1, settings.retries + 2):
        if engine.supports_json_schema:
            params = replace(params, json_schemas=tuple(schemas[i] for i in pending))
        generations = engine.generate([conversations[i] for i in pending], params)
        still_pending = []
        for position, generation in zip(pending, generations, strict=True):
            completion = generation.completions[0]
            result = parsers[position](completion.text)
            earlier = judged[position]
            judged[position] = Judged(
                answers[position].sample_id,
                result,
                completion.text,
                attempt,
                generation.prompt_tokens + (earlier.prompt_tokens if earlier else 0),
                completion.completion_tokens + (earlier.completion_tokens if earlier else 0),
            )
            if result.outcome == "unparseable":
                still_pending.append(position)
        pending = still_pending
        if not pending:
            break
        # A retry must be able to differ from the reply that failed.
        params = replace(
            params,
            temperature=max(params.temperature, 0.7),
            seed=None if params.seed is None else params.seed + attempt,
        )
    return [item for item in judged if item is not None]
