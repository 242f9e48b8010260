"""Every answer of a batch, with its verdicts, first-error analyses and newest review, as a
download: JSON Lines or Parquet.

Postgres writes each answer's JSON line itself, the same JSON as an item of the JSON listing
(`GET /v1/batches/{id}/samples`, app.services.samples): every key in the same order, the same
values, spelled as the API spells them (no spaces, `…Z` times). The lines are read a page at a
time by key (`id > last ORDER BY id LIMIT n`), each page a binary COPY in a short transaction of
its own, several pages at once (app.kernel.db.line_pages), as the pairs download reads its."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from psycopg import sql
from sqlalchemy import TextClause, text
from sqlalchemy.orm import Session, sessionmaker

from app.kernel.db.line_pages import Page, bounds_sql, keyed_line_pages
from app.kernel.pairs_export import DrainableSink

PAGE_ROWS = 500
"""Answers per page: one COPY, one Parquet row group."""


# A JSON value's text, never NULL (concat() would drop the member's value).
def _number(column: str) -> str:
    return f"coalesce({column}::text, 'null')"


def _string(column: str) -> str:
    # to_json() escapes a string as the API's serializer does (\n, \", \u001f; UTF-8 kept).
    return f"coalesce(to_json({column})::text, 'null')"


def _boolean(condition: str) -> str:
    return f"CASE ({condition}) WHEN true THEN 'true' WHEN false THEN 'false' ELSE 'null' END"


def _object(*members: tuple[str, str]) -> str:
    """One concat() writing a JSON object of these (key, JSON text) members, in this order."""
    parts = []
    for index, (key, value) in enumerate(members):
        opening = "{" if index == 0 else ","
        parts.append(f"""'{opening}"{key}":', {value}""")
    return f"concat({', '.join(parts)}, '}}')"


def _verdict(alias: str) -> str:
    """A verdict row as VerdictOut, or null where the answer has none of that kind."""
    members = [
        ("kind", _string(f"{alias}.kind")),
        ("outcome", _string(f"{alias}.outcome")),
        ("reason", _string(f"{alias}.reason")),
        ("verdict", _string(f"{alias}.verdict")),
        ("extracted_answer", _string(f"{alias}.extracted_answer")),
        ("justification", _string(f"{alias}.justification")),
        ("correct_prefix", _string(f"{alias}.correct_prefix")),
        ("wrong_step", _string(f"{alias}.wrong_step")),
        ("wrong_step_number", _number(f"{alias}.wrong_step_number")),
        ("correction", _string(f"{alias}.correction")),
        ("raw_output", _string(f"{alias}.raw_output")),
        ("attempts", _number(f"{alias}.attempts")),
        ("judge_model", _string(f"{alias}.judge_model")),
        ("prompt_version", _string(f"{alias}.prompt_version")),
    ]
    return f"CASE WHEN {alias}.id IS NULL THEN 'null' ELSE {_object(*members)} END"


# A time as pydantic writes an aware UTC datetime: seconds, microseconds only when not zero, Z.
_CREATED_AT = """concat('"',
    to_char(review.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS'),
    CASE WHEN review.created_at <> date_trunc('second', review.created_at)
        THEN to_char(review.created_at AT TIME ZONE 'UTC', '.US') END, 'Z"')"""

_REVIEW = f"""CASE WHEN review.id IS NULL THEN 'null' ELSE {
    _object(
        ("id", _number("review.id")),
        ("reviewer", _string("review.reviewer")),
        ("created_at", _CREATED_AT),
        ("final_answer_correct", "(review.after -> 'final_answer_correct')::text"),
        ("first_wrong_step", "coalesce((review.after -> 'first_wrong_step')::text, 'null')"),
        ("correction", "coalesce((review.after -> 'correction')::text, 'null')"),
    )
} END"""

# The gold label the judge is measured against: the newest review's (calibration.review_gold),
# else the one the answer was given with.
_JUDGED_GOLD = """CASE WHEN review.id IS NULL THEN sample.gold
    WHEN review.after -> 'final_answer_correct' = 'true' THEN '{"correct": true}'::jsonb
    ELSE jsonb_build_object('correct', false,
        'first_wrong_step', review.after -> 'first_wrong_step') END"""

# calibration.agreement: the final-answer verdict against gold.correct, and the first wrong step
# against gold.first_wrong_step (null: only the final line is wrong; absent: not measured).
_GOLD_CORRECT = "(judged.gold -> 'correct' = 'true')"
_FAP_AGREES = (
    f"coalesce(fap.verdict = CASE WHEN {_GOLD_CORRECT} THEN 'correct' ELSE 'wrong' END, false)"
)
_SCP_AGREES = f"""CASE WHEN fap.prompt_version = 'rule-v1' THEN NULL
    WHEN {_GOLD_CORRECT} THEN coalesce(fap.verdict = 'correct', false)
    WHEN judged.gold -> 'first_wrong_step' IS NULL THEN NULL
    WHEN fap.verdict IS DISTINCT FROM 'wrong' THEN false
    WHEN scp.id IS NULL THEN NULL
    WHEN judged.gold -> 'first_wrong_step' = 'null' THEN scp.outcome = 'no_step_error'
    ELSE coalesce(scp.outcome = 'parsed'
        AND scp.wrong_step_number = (judged.gold ->> 'first_wrong_step')::numeric, false) END"""
_AGREES = f"""CASE WHEN judged.gold IS NULL OR fap.id IS NULL THEN 'null' ELSE {
    _object(("fap", _boolean(_FAP_AGREES)), ("scp", _boolean(_SCP_AGREES)))
} END"""
# As json.dumps writes it (the Parquet column holds it as a JSON string).
_AGREES_TEXT = f"""CASE WHEN judged.gold IS NULL OR fap.id IS NULL THEN NULL ELSE concat(
    '{{"fap": ', {_boolean(_FAP_AGREES)}, ', "scp": ', {_boolean(_SCP_AGREES)}, '}}') END"""

# consensus.agreement: judge and rollouts name the same first wrong step (scp-v1 quotes the step:
# compared with runs of whitespace as one space, as _squash does; Postgres's \s is ASCII
# whitespace, where str.split() also splits at other Unicode spaces).
_DECIDED = "('parsed', 'no_step_error')"
_SQUASH = "btrim(regexp_replace(coalesce({0}.wrong_step, ''), '\\s+', ' ', 'g'), ' ')"
_JUDGE_ROLLOUT_AGREEMENT = f"""CASE WHEN scp.id IS NULL OR rollout.id IS NULL
        OR scp.outcome NOT IN {_DECIDED} OR rollout.outcome NOT IN {_DECIDED} THEN 'null'
    WHEN scp.outcome <> rollout.outcome THEN '"disagree"'
    WHEN scp.outcome = 'no_step_error' THEN '"agree"'
    WHEN CASE WHEN scp.wrong_step_number IS NOT NULL AND rollout.wrong_step_number IS NOT NULL
            THEN scp.wrong_step_number = rollout.wrong_step_number
            ELSE {_SQUASH.format("scp")} = {_SQUASH.format("rollout")} END
        THEN '"agree"'
    ELSE '"disagree"' END"""

# round(successes / rollouts, 4) as Python rounds and prints it: half to even (a tie is an exact
# double while rollouts < 160), the float's shortest digits, ".0" on a whole number.
_RATE_UNITS = """(estimate.successes::bigint * 10000 / estimate.rollouts
    + CASE sign(2 * (estimate.successes::bigint * 10000 % estimate.rollouts) - estimate.rollouts)
        WHEN 1 THEN 1
        WHEN 0 THEN (estimate.successes::bigint * 10000 / estimate.rollouts) % 2
        ELSE 0 END)"""
_SUCCESS_RATE = f"""CASE WHEN estimate.rollouts = 0 THEN '0.0'
    ELSE ({_RATE_UNITS}::float8 / 10000)::text
        || CASE WHEN {_RATE_UNITS} % 10000 = 0 THEN '.0' ELSE '' END END"""
_PREFIX_ESTIMATES = f"""coalesce((SELECT '[' || string_agg({
    _object(
        ("prefix_steps", "estimate.prefix_steps::text"),
        ("rollouts", "estimate.rollouts::text"),
        ("successes", "estimate.successes::text"),
        ("unknown", "estimate.unknown::text"),
        ("success_rate", _SUCCESS_RATE),
    )
}, ',' ORDER BY estimate.prefix_steps) || ']'
    FROM prefix_rollouts AS estimate WHERE estimate.sample_id = sample.id), 'null')"""


def sample_line_sql(*, arrow: bool = False) -> str:
    """An answer's JSON line as SampleOut's JSON; `arrow`: gold and agrees as JSON strings, for
    the Parquet columns (Arrow reads the line; the keys Parquet lacks are left out there)."""
    if arrow:
        gold = "coalesce(to_json(sample.gold::text)::text, 'null')"
        agrees = f"coalesce(to_json({_AGREES_TEXT})::text, 'null')"
    else:
        # A gold label holds booleans and numbers only: its jsonb text differs from compact JSON
        # in the spaces after its separators alone.
        gold = """coalesce(replace(replace(sample.gold::text, '": ', '":'), ', "', ',"'),
            'null')"""
        agrees = _AGREES
    return _object(
        ("id", "sample.id::text"),
        ("object", "'\"sample\"'"),
        ("prompt_id", "sample.prompt_id::text"),
        ("custom_id", _string("prompt.custom_id")),
        ("question", _string("prompt.question")),
        ("reference_answer", _string("prompt.reference_answer")),
        ("sample_index", "sample.sample_index::text"),
        ("text", _string("sample.text")),
        ("completion_tokens", "sample.completion_tokens::text"),
        ("policy_model", _string("sample.policy_model")),
        ("policy_prompt_version", _string("sample.policy_prompt_version")),
        ("source", _string("sample.source")),
        ("finish_reason", _string("sample.finish_reason")),
        ("fap", _verdict("fap")),
        ("scp", _verdict("scp")),
        ("gold", gold),
        ("review", _REVIEW),
        ("agrees", agrees),
        ("rollout", _verdict("rollout")),
        ("prefix_estimates", _PREFIX_ESTIMATES),
        ("judge_rollout_agreement", _JUDGE_ROLLOUT_AGREEMENT),
    )


# Each answer's verdict of each kind, looked up by its unique key (sample_id, kind) for each
# answer of the page. (As plain joins the planner merges them: each page would then read the
# verdicts index from the batch's first answer, a cost that grows with the page's position.
# LIMIT keeps each a lookup; a verdict is unique per answer and kind, so it drops nothing.)
_VERDICT_JOINS = "\n".join(
    f"""LEFT JOIN LATERAL (
        SELECT * FROM verdicts WHERE verdicts.sample_id = sample.id AND verdicts.kind = '{kind}'
        LIMIT 1
    ) AS {kind} ON true"""
    for kind in ("fap", "scp", "rollout")
)
# What a line reads besides: the question, the newest review, the gold label judged against.
_LINE_JOINS = f"""JOIN prompts AS prompt ON prompt.id = sample.prompt_id
    LEFT JOIN LATERAL (
        SELECT newest.* FROM reviews AS newest WHERE newest.sample_id = sample.id
        ORDER BY newest.id DESC LIMIT 1
    ) AS review ON true
    CROSS JOIN LATERAL (SELECT {_JUDGED_GOLD} AS gold) AS judged"""

VERDICT_FILTERS = {
    "correct": "fap.verdict = 'correct'",
    "wrong": "fap.verdict = 'wrong'",
    "unparseable": "fap.outcome = 'unparseable'",
    "truncated": "fap.outcome = 'truncated'",
}
"""`verdict`: the answers whose final-answer verdict is this (samples.list_samples)."""
_BOTH_DECIDED = f"scp.outcome IN {_DECIDED} AND rollout.outcome IN {_DECIDED}"
_STEPS_DIFFER = """(scp.outcome <> rollout.outcome
    OR scp.wrong_step_number IS DISTINCT FROM rollout.wrong_step_number)"""
AGREEMENT_FILTERS = {
    "agree": f"{_BOTH_DECIDED} AND NOT {_STEPS_DIFFER}",
    "disagree": f"{_BOTH_DECIDED} AND {_STEPS_DIFFER}",
}
"""`agreement`: judge and rollouts both decided, and agree (or not) (samples.with_agreement)."""


def _filters(verdict: str | None, agreement: str | None) -> str:
    """The conditions after the batch's id; unknown values are refused, never written in."""
    conditions = []
    if verdict is not None:
        conditions.append(VERDICT_FILTERS[verdict])
    if agreement is not None:
        conditions.append(AGREEMENT_FILTERS[agreement])
    return "".join(f" AND {condition}" for condition in conditions)


def bounds_statement(verdict: str | None, agreement: str | None) -> TextClause:
    """Where the next pages end (app.kernel.db.line_pages), over the answers the filters keep."""
    filters = _filters(verdict, agreement)
    joins = _VERDICT_JOINS if filters else ""  # the keys alone, off an index, without filters
    scope = f"samples AS sample {joins} WHERE sample.batch_id = :batch_id"
    return text(bounds_sql("sample.id", scope + filters))


def page_statement(
    batch_id: str,
    *,
    verdict: str | None,
    agreement: str | None,
    after: int,
    rows: int,
    arrow: bool = False,
) -> sql.Composed:
    """One page as a COPY of its lines: the first `rows` answers with an id past `after`."""
    scope = f"samples AS sample {_LINE_JOINS} {_VERDICT_JOINS} WHERE sample.batch_id = "
    return sql.Composed(
        [
            sql.SQL(f"COPY (SELECT {sample_line_sql(arrow=arrow)} FROM {scope}"),
            sql.Literal(batch_id),
            sql.SQL(
                f"{_filters(verdict, agreement)} AND sample.id > {int(after)}"
                f" ORDER BY sample.id LIMIT {int(rows)}) TO STDOUT (FORMAT binary)"
            ),
        ]
    )


def sample_pages(
    session_factory: sessionmaker[Session],
    batch_id: str,
    *,
    verdict: str | None = None,
    agreement: str | None = None,
    page_rows: int = PAGE_ROWS,
    arrow: bool = False,
) -> Iterator[Page]:
    """The batch's answers' JSON lines in id order (those `verdict` and `agreement` keep, as in
    samples.list_samples), a page at a time, each page ending in a newline."""
    return keyed_line_pages(
        session_factory,
        bounds_statement=bounds_statement(verdict, agreement),
        bounds_parameters={"batch_id": batch_id},
        page_statement=lambda after, rows: page_statement(
            batch_id, verdict=verdict, agreement=agreement, after=after, rows=rows, arrow=arrow
        ),
        page_rows=page_rows,
    )


def samples_jsonl(pages: Iterator[Page]) -> Iterator[Page]:
    """JSON Lines: a line per answer, an item of the JSON listing; a page per piece."""
    yield from pages


def samples_parquet_schema() -> Any:
    """The Parquet columns: the answer's fields, each verdict and the review a struct, gold and
    its agreement as JSON strings (their keys vary)."""
    import pyarrow as pa

    verdict = pa.struct(
        [
            ("kind", pa.string()),
            ("outcome", pa.string()),
            ("reason", pa.string()),
            ("verdict", pa.string()),
            ("extracted_answer", pa.string()),
            ("justification", pa.string()),
            ("correct_prefix", pa.string()),
            ("wrong_step", pa.string()),
            ("wrong_step_number", pa.int64()),
            ("correction", pa.string()),
            ("raw_output", pa.string()),
            ("attempts", pa.int64()),
            ("judge_model", pa.string()),
            ("prompt_version", pa.string()),
        ]
    )
    estimate = pa.struct(
        [
            ("prefix_steps", pa.int64()),
            ("rollouts", pa.int64()),
            ("successes", pa.int64()),
            ("unknown", pa.int64()),
            ("success_rate", pa.float64()),
        ]
    )
    review = pa.struct(
        [
            ("id", pa.int64()),
            ("reviewer", pa.string()),
            ("created_at", pa.timestamp("us", tz="UTC")),
            ("final_answer_correct", pa.bool_()),
            ("first_wrong_step", pa.int64()),
            ("correction", pa.string()),
        ]
    )
    return pa.schema(
        [
            ("id", pa.int64()),
            ("prompt_id", pa.int64()),
            ("custom_id", pa.string()),
            ("question", pa.string()),
            ("reference_answer", pa.string()),
            ("sample_index", pa.int64()),
            ("text", pa.string()),
            ("completion_tokens", pa.int64()),
            ("policy_model", pa.string()),
            ("policy_prompt_version", pa.string()),
            ("source", pa.string()),
            ("finish_reason", pa.string()),
            ("fap", verdict),
            ("scp", verdict),
            ("rollout", verdict),
            ("gold", pa.string()),
            ("review", review),
            ("agrees", pa.string()),
            ("prefix_estimates", pa.list_(estimate)),
            ("judge_rollout_agreement", pa.string()),
        ]
    )


def samples_parquet(pages: Iterator[Page]) -> Iterator[Page]:
    """Parquet, a row group per page (read with `arrow=True`): Arrow parses each page of JSON
    lines into columns, so memory stays that of one page; each piece what was written since the
    last."""
    import pyarrow as pa
    import pyarrow.json as pa_json
    import pyarrow.parquet as pq

    schema = samples_parquet_schema()
    parse_options = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    sink = DrainableSink()
    out = pa.PythonFile(sink, mode="w")
    writer = pq.ParquetWriter(out, schema)
    try:
        for data in pages:
            table = pa_json.read_json(
                io.BytesIO(data),
                # One block per page: a block must hold whole lines, and an answer may be long.
                read_options=pa_json.ReadOptions(use_threads=False, block_size=len(data) + 1),
                parse_options=parse_options,
            )
            writer.write_table(table.select(schema.names))
            yield sink.drain()
    finally:
        # Closed even when the client went away.
        writer.close()
        out.close()
    yield sink.drain()
