"""Every failure of a client command is one line on stderr and a non-zero exit code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

from tests.live import free_port


def test_unknown_id_is_a_404_line(findap: Callable[..., Result]) -> None:
    result = findap("status", "batch_nope")
    assert result.exit_code == 1
    assert result.stderr == "error: 404 batch 'batch_nope' not found\n"
    assert result.stdout == ""


def test_an_id_of_no_known_kind_is_named(findap: Callable[..., Result]) -> None:
    result = findap("status", "nope")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: ID: expected one of batch_…, ftjob_…, ds_…, eval_…, got 'nope'\n"
    )


def test_bad_key_is_a_401_line_naming_where_the_key_came_from(
    findap: Callable[..., Result], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FINDAP_KEY", "fdp_not-a-key")
    result = findap("models")
    assert result.exit_code == 1
    assert result.stderr == "error: 401 unknown API key (the key came from FINDAP_KEY)\n"

    monkeypatch.delenv("FINDAP_KEY")
    monkeypatch.setenv("FINDAP_API_KEY", "fdp_not-a-key")
    assert findap("models").stderr == (
        "error: 401 unknown API key (the key came from FINDAP_API_KEY)\n"
    )

    monkeypatch.delenv("FINDAP_API_KEY")
    config = tmp_path / "findap.toml"
    config.write_text('api_key = "fdp_not-a-key"\n')
    monkeypatch.setenv("FINDAP_CONFIG", str(config))
    assert findap("models").stderr == f"error: 401 unknown API key (the key came from {config})\n"


def test_missing_key_says_how_to_set_one(
    findap: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FINDAP_KEY")
    result = findap("models")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no API key: set FINDAP_KEY, or run `findap login")
    assert result.stderr.count("\n") == 1


def test_unreachable_server_is_one_line_naming_it(findap: Callable[..., Result]) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = findap("status", "batch_x", "--url", url)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: cannot reach the findap server at {url} (")
    assert result.stderr.endswith(
        "is it up? Point to it with --url, FINDAP_URL or `findap login`\n"
    )
    assert result.stderr.count("\n") == 1


def test_url_without_a_scheme_is_refused(findap: Callable[..., Result]) -> None:
    result = findap("models", "--url", "localhost:8000")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: url: must start with http:// or https://, got 'localhost:8000'\n"
    )


def test_unreadable_config_file_is_named(
    findap: Callable[..., Result], client_environment: dict[str, str]
) -> None:
    config = Path(client_environment["FINDAP_CONFIG"])
    config.parent.mkdir(parents=True)
    config.write_text("url = \n")
    result = findap("models")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: config file {config}: ")
    assert result.stderr.count("\n") == 1
