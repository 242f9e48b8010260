"""Where the client finds its server and key: options, the environment, then a config file."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from app.client.errors import ClientError

DEFAULT_URL = "http://127.0.0.1:8000"
KEY_VARIABLES = ("FINDAP_KEY", "FINDAP_API_KEY")
"""Where the environment gives the API key, first wins: FINDAP_KEY is the documented name,
FINDAP_API_KEY the older one, still read."""
KEY_HELP = (
    "no API key: set FINDAP_KEY, or run "
    "`findap login --url URL --key fdp_…`; `findap keys create --project NAME` makes one"
)


def config_path() -> Path:
    """The config file: FINDAP_CONFIG, else ~/.config/findap/config.toml (XDG_CONFIG_HOME)."""
    if explicit := os.environ.get("FINDAP_CONFIG"):
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "findap" / "config.toml"


class ClientConfig(BaseSettings):
    """The server URL and API key, from (first wins) arguments, FINDAP_* variables, the file."""

    model_config = SettingsConfigDict(env_prefix="FINDAP_", extra="ignore", populate_by_name=True)

    url: str = Field(default=DEFAULT_URL, description="The findap server (FINDAP_URL).")
    api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(*KEY_VARIABLES),
        description="An API key, fdp_… (FINDAP_KEY; FINDAP_API_KEY is still read).",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # No .env: that file holds the server's settings, not a client's.
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=config_path()),
        )

    def key(self) -> str:
        """The API key, or a ClientError that says how to set one."""
        if self.api_key is None or not self.api_key.get_secret_value():
            raise ClientError(KEY_HELP)
        return self.api_key.get_secret_value()

    def key_source(self) -> str:
        """Where the key came from, for a message about a key the server refused."""
        for name in KEY_VARIABLES:
            if os.environ.get(name):
                return name
        return str(config_path())


def load_config(url: str | None = None) -> ClientConfig:
    """The client's configuration; `url` (the --url option) overrides every other source."""
    try:
        return ClientConfig(url=url) if url else ClientConfig()
    except tomllib.TOMLDecodeError as error:
        raise ClientError(f"config file {config_path()}: {error}") from None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ClientError(f"config {where}: {first['msg']}") from None


def save_config(url: str, key: str) -> Path:
    """Write URL and key to the config file, readable by its owner only; returns its path."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    # JSON string escapes are valid TOML basic-string escapes.
    text = f"url = {json.dumps(url)}\napi_key = {json.dumps(key)}\n"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    path.chmod(0o600)  # an existing file keeps its mode through O_CREAT
    return path
