"""Pairs written straight into the database, and the download as the Python encoder wrote it
before Postgres wrote the JSON (the reference the downloads must still match, byte for byte)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.kernel.models import Batch, Chunk, PreferencePair, Prompt, Sample

TRICKY_TEXTS = [
    'He said "buy" \\ then\nsold\ttoo\r\n',
    "Ünïcode 財務 — €1,000 · emoji 📈🚀 and a ZWJ sequence 👩\u200d💻",
    "control \x01\x08\x0c\x1f, DEL \x7f, separators \u2028 \u2029, and a literal \\u0041",
    '</script><!-- & \' {"json": [1, 2]} inside a string',
    "",
]


@dataclass
class PairSpec:
    """One pair to store; defaults make a plain sampled FAP pair."""

    question: str = "What is the coupon?"
    chosen: str = "Step 1: 5% of 1,000.\nAnswer: B"
    rejected: str = "Step 1: 10%.\nAnswer: A"
    custom_id: str | None = "q1"
    kind: str = "fap"
    chosen_has_sample: bool = True
    token_count: int | None = 42
    provenance: dict[str, Any] = field(
        default_factory=lambda: {
            "source": "policy",
            "policy_model": "tiny",
            "judge_model": "rule",
            "sampling": {"samples_per_prompt": 4, "temperature": 0.8, "top_p": 1.0, "seed": None},
        }
    )
    extra_message_keys: dict[str, Any] = field(default_factory=dict)


def tricky_specs() -> list[PairSpec]:
    """Pairs whose text and fields stress the JSON: quotes, escapes, non-ASCII, nulls, {}."""
    specs = [
        PairSpec(
            question=text,
            chosen=TRICKY_TEXTS[(i + 1) % len(TRICKY_TEXTS)],
            rejected=TRICKY_TEXTS[(i + 2) % len(TRICKY_TEXTS)],
            custom_id=[None, 'q"1', "財務-1", "a\\b", "plain"][i],
            kind="scp" if i % 2 else "fap",
        )
        for i, text in enumerate(TRICKY_TEXTS)
    ]
    specs.append(PairSpec(chosen_has_sample=False, token_count=None, provenance={}))
    specs.append(
        PairSpec(
            provenance={"source": "given", "note": 'Ünïcode "q"\n', "weights": [0.5, 1e-3, 2]},
            extra_message_keys={"name": "analyst"},
        )
    )
    return specs


def store_pairs(
    session_factory: sessionmaker[Session],
    project_id: str,
    specs: list[PairSpec],
    *,
    status: str = "completed",
) -> str:
    """A batch of this project holding one prompt and one pair per spec; its id."""
    with session_factory.begin() as session:
        batch = Batch(
            project_id=project_id,
            status=status,
            policy={},
            judge={},
            pairing={},
            total_prompts=len(specs),
            chunk_size=len(specs),
        )
        session.add(batch)
        session.flush()
        chunk = Chunk(batch_id=batch.id, index=0, n_prompts=len(specs), status="succeeded")
        session.add(chunk)
        session.flush()
        for index, spec in enumerate(specs):
            store_pair(session, batch.id, chunk.id, index, spec)
        return batch.id


def store_pair(session: Session, batch_id: str, chunk_id: int, index: int, spec: PairSpec) -> None:
    prompt = Prompt(
        batch_id=batch_id,
        index=index,
        custom_id=spec.custom_id,
        question=spec.question,
        chunk_id=chunk_id,
    )
    session.add(prompt)
    session.flush()
    samples = [
        Sample(
            batch_id=batch_id,
            prompt_id=prompt.id,
            sample_index=side,
            text=answer,
            prompt_tokens=1,
            completion_tokens=1,
            policy_model="tiny",
            policy_prompt_version="policy-v1",
        )
        for side, answer in enumerate((spec.chosen, spec.rejected))
    ]
    session.add_all(samples)
    session.flush()
    session.add(
        PreferencePair(
            batch_id=batch_id,
            prompt_id=prompt.id,
            kind=spec.kind,
            prompt=[{"role": "user", "content": spec.question, **spec.extra_message_keys}],
            chosen=[{"role": "assistant", "content": spec.chosen}],
            rejected=[{"role": "assistant", "content": spec.rejected}],
            chosen_sample_id=samples[0].id if spec.chosen_has_sample else None,
            rejected_sample_id=samples[1].id,
            content_hash=f"hash-{index}",
            token_count=spec.token_count,
            provenance=spec.provenance,
        )
    )


def reference_rows(session_factory: sessionmaker[Session], batch_id: str) -> list[dict[str, Any]]:
    """A batch's rows as the Python encoder built them: ORM rows, provenance spread last."""
    query = (
        select(PreferencePair, Prompt.custom_id)
        .join(Prompt, Prompt.id == PreferencePair.prompt_id)
        .where(PreferencePair.batch_id == batch_id)
        .order_by(PreferencePair.id)
    )
    with session_factory() as session:
        return [
            {
                "prompt": pair.prompt,
                "chosen": pair.chosen,
                "rejected": pair.rejected,
                "kind": pair.kind,
                "id": pair.id,
                "batch_id": pair.batch_id,
                "prompt_id": pair.prompt_id,
                "custom_id": custom_id,
                "chosen_sample_id": pair.chosen_sample_id,
                "rejected_sample_id": pair.rejected_sample_id,
                "token_count": pair.token_count,
                **pair.provenance,
            }
            for pair, custom_id in session.execute(query)
        ]


def reference_jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(row, ensure_ascii=False).encode() + b"\n" for row in rows)


def reference_openai_jsonl(rows: list[dict[str, Any]]) -> bytes:
    return reference_jsonl(
        [
            {
                "input": {"messages": row["prompt"]},
                "preferred_output": row["chosen"],
                "non_preferred_output": row["rejected"],
            }
            for row in rows
        ]
    )


def reference_parquet_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Parquet columns as the Python encoder filled them; provenance a JSON string."""
    columns = []
    for row in rows:
        rest = dict(row)
        core = {key: rest.pop(key) for key in ("prompt", "chosen", "rejected", "kind", "id")}
        core["batch_id"] = rest.pop("batch_id")
        core["custom_id"] = rest.pop("custom_id")
        core["provenance"] = json.dumps(rest, ensure_ascii=False)
        columns.append(core)
    return columns
