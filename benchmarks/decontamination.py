"""Decontamination speed: pairs checked per second against an eval set, on a seeded synthetic
workload; first the matching alone (in memory), then a dataset read from Postgres in pages.

    python -m benchmarks.decontamination      # 100,000 pairs in memory, 50,000 from Postgres
    python -m benchmarks.decontamination --pairs 20000 --database-pairs 0
Prompts are 60-120 words drawn from a 5,000-word vocabulary; 1 % of them carry a 13-word span of
an eval question and 0.5 % are an eval question with its case and punctuation changed, so the
flagged count can be checked against what was planted. The Postgres run makes its pairs in a
throwaway database on DATABASE_URL's server (or an embedded Postgres in --data-dir).
"""

from __future__ import annotations

import json
import random
import resource
import time
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import text

from app.kernel.config import get_settings
from app.kernel.db.session import make_engine, make_session_factory
from app.kernel.decontamination import NGRAM_SIZE, index_parts, match_prompt, words
from app.kernel.files import uploaded_file_path
from app.kernel.models import Dataset
from app.launch import backing_services
from app.services.api_keys import project_named
from app.services.decontamination import decontaminate_dataset, eval_file_overlap
from benchmarks.download import PAIRS_PER_PROMPT, store_pairs, throwaway_database

VOCABULARY = 5000


def synthetic_text(rng: random.Random, vocabulary: list[str], low: int, high: int) -> str:
    return " ".join(rng.choices(vocabulary, k=rng.randint(low, high)))


def make_workload(seed: int, pairs: int, questions: int) -> tuple[list[str], list[str], int, int]:
    """Eval questions, pair prompts, and how many prompts got a planted span / exact copy."""
    rng = random.Random(seed)
    vocabulary = [f"w{n}" for n in range(VOCABULARY)]
    eval_questions = [synthetic_text(rng, vocabulary, 20, 80) for _ in range(questions)]
    prompts = [synthetic_text(rng, vocabulary, 60, 120) for _ in range(pairs)]
    spans = exact = 0
    for position in rng.sample(range(pairs), k=pairs // 100 + pairs // 200):
        source = words(rng.choice(eval_questions))
        if spans < pairs // 100:
            start = rng.randrange(len(source) - NGRAM_SIZE + 1)
            span = " ".join(source[start : start + NGRAM_SIZE])
            prompt = prompts[position]
            half = len(prompt) // 2
            prompts[position] = f"{prompt[:half]} {span.upper()}, {prompt[half:]}"
            spans += 1
        else:
            prompts[position] = "  " + " , ".join(source).title() + "?"
            exact += 1
    return eval_questions, prompts, spans, exact


def match_in_memory(eval_questions: list[str], prompts: list[str]) -> None:
    """The matching alone: index the eval set, then every prompt as its own question."""
    started = time.perf_counter()
    (index,) = list(index_parts(eval_questions))
    indexed = time.perf_counter() - started
    started = time.perf_counter()
    flagged = sum(match_prompt(index, [prompt], prompt).flagged for prompt in prompts)
    seconds = time.perf_counter() - started
    print(
        f"in memory: index of {len(index.questions):,} questions ({len(index.ngrams):,} "
        f"{NGRAM_SIZE}-grams) in {indexed:.2f} s; {len(prompts):,} pairs in {seconds:.2f} s, "
        f"pairs/s {len(prompts) / seconds:,.0f}; flagged {flagged:,}"
    )


def match_from_postgres(eval_questions: list[str], pairs: int, data_dir: Path) -> None:
    """decontaminate_dataset on a dataset of `pairs` pairs made in Postgres (4 per question,
    `Question N`); the eval set holds every ninth of those questions, so a ninth are flagged."""
    settings = get_settings().model_copy(update={"data_dir": data_dir})
    prompts = -(-pairs // PAIRS_PER_PROMPT)
    planted = [f"QUESTION {n}." for n in range(0, prompts, 9)]
    files_dir = data_dir / "files"
    files_dir.mkdir(parents=True, exist_ok=True)
    eval_path = uploaded_file_path(files_dir, "file_bench")
    with eval_path.open("w") as out:
        for question in [*eval_questions, *planted]:
            out.write(json.dumps({"question": question, "reference_answer": "B"}) + "\n")
    with (
        backing_services(settings, reclaim_running=False) as bound,
        throwaway_database(bound.require_database_url()) as database_url,
    ):
        engine = make_engine(database_url)
        with make_session_factory(engine).begin() as session:
            project_id = project_named(session, "bench-decontamination").id
            batch_id = store_pairs(session, project_id=project_id, pairs=pairs)
            dataset = Dataset(
                project_id=project_id,
                name="bench",
                version=1,
                selection={"batch_ids": [batch_id]},
                counts={},
            )
            session.add(dataset)
            session.flush()
            session.execute(
                text(
                    "INSERT INTO dataset_pairs (dataset_id, pair_id) "
                    "SELECT :dataset_id, id FROM preference_pairs WHERE batch_id = :batch_id"
                ),
                {"dataset_id": dataset.id, "batch_id": batch_id},
            )
            session.execute(text("ANALYZE dataset_pairs"))
            started = time.perf_counter()
            overlap = eval_file_overlap(session, eval_path, project_id=project_id)
            upload_seconds = time.perf_counter() - started
            started = time.perf_counter()
            found = decontaminate_dataset(
                session, dataset, ["file_bench"], files_dir=files_dir, drop=True
            )
            seconds = time.perf_counter() - started
        engine.dispose()
    print(
        f"from Postgres: {found['pairs_checked']:,} pairs in {seconds:.2f} s, pairs/s "
        f"{found['pairs_checked'] / seconds:,.0f}; flagged {found['pairs_flagged']:,}, "
        f"dropped {found['pairs_dropped']:,} (planted: {len(planted):,} questions)"
    )
    print(
        f"eval upload overlap: {overlap['pairs_checked']:,} pairs of the project's datasets in "
        f"{upload_seconds:.2f} s, pairs/s {overlap['pairs_checked'] / upload_seconds:,.0f}; "
        f"matching {overlap['pairs_matching']:,}, questions matching "
        f"{overlap['questions_matching']:,}"
    )


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(
    pairs: Annotated[int, typer.Option(help="Pairs matched in memory (0 skips it).")] = 100_000,
    questions: Annotated[int, typer.Option(help="Eval questions.")] = 1000,
    database_pairs: Annotated[
        int, typer.Option(help="Pairs of the Postgres run (0 skips it).")
    ] = 50_000,
    seed: int = 0,
    data_dir: Path = Path("data/bench"),
) -> None:
    at_start = peak_rss_mib()
    eval_questions, prompts, spans, exact = make_workload(seed, pairs, questions)
    print(f"planted: {spans:,} prompts with a 13-word span, {exact:,} exact copies")
    if prompts:
        match_in_memory(eval_questions, prompts)
    del prompts
    if database_pairs:
        match_from_postgres(eval_questions, database_pairs, data_dir)
    print(f"peak RSS of this process: {peak_rss_mib():.0f} MiB ({at_start:.0f} MiB at start)")


if __name__ == "__main__":
    typer.run(main)
