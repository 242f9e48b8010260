"""Client commands of `findap` (filled in by the CLI work)."""

import typer


def register(cli: typer.Typer) -> None:
    """Add the client commands (submit, status, download, datasets, train, models) to `cli`."""
