"""Where the client finds its server and key: `findap login`'s file, the environment, --url."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

from app.client.config import load_config
from tests.live import LiveApi


@pytest.fixture
def config_file(client_environment: dict[str, str]) -> Path:
    return Path(client_environment["FINDAP_CONFIG"])


def test_login_saves_url_and_key_for_later_commands(
    findap: Callable[..., Result],
    server: LiveApi,
    config_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FINDAP_URL")
    monkeypatch.delenv("FINDAP_KEY")
    result = findap("login", "--url", server.url, "--key", server.key)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"saved {server.url} and the key to {config_file}\n"
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    assert config_file.read_text() == f'url = "{server.url}"\napi_key = "{server.key}"\n'

    models = findap("models", "--json")
    assert models.exit_code == 0, models.output
    assert '"object": "list"' in models.stdout


def test_login_with_a_wrong_key_saves_nothing(
    findap: Callable[..., Result], server: LiveApi, config_file: Path
) -> None:
    result = findap("login", "--url", server.url, "--key", "fdp_wrong")
    assert result.exit_code == 1
    assert result.stderr == "error: 401 unknown API key (the key came from --key)\n"
    assert not config_file.exists()


def test_environment_wins_over_the_file_and_url_option_over_both(
    client_environment: dict[str, str], config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file.parent.mkdir(parents=True)
    config_file.write_text('url = "http://file:1"\napi_key = "fdp_file"\n')
    monkeypatch.delenv("FINDAP_URL")
    monkeypatch.delenv("FINDAP_KEY")
    assert load_config().url == "http://file:1"
    assert load_config().key() == "fdp_file"
    assert load_config().key_source() == str(config_file)

    monkeypatch.setenv("FINDAP_API_KEY", "fdp_api")  # the older name, still read
    monkeypatch.setenv("FINDAP_URL", "http://env:2")
    assert load_config().key() == "fdp_api"
    assert load_config().key_source() == "FINDAP_API_KEY"
    assert load_config().url == "http://env:2"
    monkeypatch.setenv("FINDAP_KEY", "fdp_key")  # the documented name wins
    assert load_config().key() == "fdp_key"
    assert load_config().key_source() == "FINDAP_KEY"
    assert load_config("http://option:3").url == "http://option:3"
