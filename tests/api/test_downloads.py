"""Downloads: the JSON Postgres writes is the JSON the Python encoder wrote, in every format, and
any dataset name makes a valid Content-Disposition."""

from __future__ import annotations

import io
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.api.downloads import attachment
from app.kernel.pairs_export import LineFormat, PairSource, line_pages, pair_rows, parquet_schema
from tests.api.stored_pairs import (
    reference_jsonl,
    reference_openai_jsonl,
    reference_parquet_rows,
    reference_rows,
    store_pairs,
    tricky_specs,
)
from tests.conftest import project_id


def test_pairs_download_is_byte_identical_to_the_python_encoder_on_tricky_text(
    client: TestClient,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    batch_id = store_pairs(session_factory, project_id(session_factory), tricky_specs())
    expected = reference_rows(session_factory, batch_id)

    response = client.get(f"/v1/batches/{batch_id}/pairs")
    assert response.status_code == 200, response.text
    assert response.content == reference_jsonl(expected)
    assert list(pair_rows(session_factory, batch_id=batch_id)) == expected  # what training reads


def test_dataset_downloads_match_the_python_encoder_in_all_three_formats(
    client: TestClient,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    batch_id = store_pairs(session_factory, project_id(session_factory), tricky_specs())
    expected = reference_rows(session_factory, batch_id)
    dataset = client.post("/v1/datasets", json={"name": "tricky", "batch_ids": [batch_id]})
    assert dataset.status_code == 201, dataset.text
    url = f"/v1/datasets/{dataset.json()['id']}/download"

    assert client.get(url).content == reference_jsonl(expected)
    assert client.get(url, params={"format": "openai"}).content == reference_openai_jsonl(expected)
    table = pq.read_table(io.BytesIO(client.get(url, params={"format": "parquet"}).content))
    reference = pa.Table.from_pylist(reference_parquet_rows(expected), schema=parquet_schema())
    assert table.to_pylist() == reference.to_pylist()
    assert table.schema.equals(reference.schema)


def test_pages_read_by_key_give_every_pair_once_in_order(
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    batch_id = store_pairs(session_factory, project_id(session_factory), tricky_specs())
    source = PairSource(batch_id=batch_id)
    one_page = list(line_pages(session_factory, source, LineFormat.TRL))
    pages_of_two = list(line_pages(session_factory, source, LineFormat.TRL, page_rows=2))
    assert len(one_page) == 1 and len(pages_of_two) == 4  # 7 pairs: 2 + 2 + 2 + 1
    assert b"".join(pages_of_two) == one_page[0]


def test_pages_leave_every_pooled_connection_decoding_text(
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    """Pages come as UTF-8 bytes (client_encoding SQL_ASCII for their transaction only): the
    connections they used give str again afterwards."""
    batch_id = store_pairs(session_factory, project_id(session_factory), tricky_specs())
    source = PairSource(batch_id=batch_id)
    assert list(line_pages(session_factory, source, LineFormat.TRL, page_rows=2))
    sessions = [session_factory() for _ in range(4)]  # the pages' connections among them
    try:
        for session in sessions:
            assert session.execute(
                text("SELECT 'é', current_setting('client_encoding')")
            ).one() == (
                "é",
                "UTF8",
            )
    finally:
        for session in sessions:
            session.close()


def test_parquet_of_many_pages_has_one_row_group_per_page(
    client: TestClient,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    from benchmarks.download import store_pairs as store_many_pairs

    with session_factory.begin() as session:
        batch_id = store_many_pairs(session, project_id=project_id(session_factory), pairs=2500)
    content = client.get(f"/v1/batches/{batch_id}/pairs", params={"format": "parquet"}).content
    parquet = pq.ParquetFile(io.BytesIO(content))
    assert parquet.metadata.num_rows == 2500
    assert [parquet.metadata.row_group(i).num_rows for i in range(3)] == [1000, 1000, 500]
    ids = parquet.read().column("id").to_pylist()
    assert ids == sorted(ids)


def test_a_non_ascii_dataset_name_downloads_with_an_rfc_5987_filename(
    client: TestClient,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    batch_id = store_pairs(session_factory, project_id(session_factory), tricky_specs())
    name = "Ünïcode_財務.v2"
    dataset = client.post("/v1/datasets", json={"name": name, "batch_ids": [batch_id]}).json()

    for format, suffix in (("trl", "-trl.jsonl"), ("parquet", ".parquet")):
        response = client.get(f"/v1/datasets/{dataset['id']}/download", params={"format": format})
        assert response.status_code == 200, response.text
        fallback, encoded = response.headers["Content-Disposition"].split("; filename*=UTF-8''")
        assert fallback == f'attachment; filename="Unicode___.v2-v1{suffix}"'
        assert unquote(encoded) == f"{name}-v1{suffix}"


def test_attachment_header_escapes_quotes_and_keeps_plain_names_plain() -> None:
    assert attachment("batch_1-pairs.jsonl") == 'attachment; filename="batch_1-pairs.jsonl"'
    header = attachment('Ünïcode 財務 "x".jsonl')
    assert header == (
        'attachment; filename="Unicode __ _x_.jsonl"; '
        "filename*=UTF-8''%C3%9Cn%C3%AFcode%20%E8%B2%A1%E5%8B%99%20%22x%22.jsonl"
    )
    header.encode("latin-1")  # what an HTTP header must be
