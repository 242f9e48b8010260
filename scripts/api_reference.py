"""Write docs/api-reference.md from the app's OpenAPI schema: every operation, then every schema.

    .venv/bin/python scripts/api_reference.py           # rewrite docs/api-reference.md
    .venv/bin/python scripts/api_reference.py --check   # exit 1 when the file is stale

The schema is built in memory (create_app connects to nothing until it serves), so this needs no
Postgres or Redis. The output depends only on the schema: same code, same file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "api-reference.md"
METHODS = ("get", "post", "put", "patch", "delete")

Schema = dict[str, Any]


def openapi_schema() -> Schema:
    """The schema /openapi.json serves."""
    sys.path.insert(0, str(ROOT))
    from app.kernel.config import Settings
    from app.main import create_app

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url="postgresql://findap@localhost/findap",
        redis_url="redis://localhost:6379/0",
    )
    spec = create_app(settings).openapi()
    fill_missing_schemas(spec)
    return spec


def references(node: Any) -> set[str]:
    """Names of the component schemas a part of the schema points to."""
    if isinstance(node, dict):
        found = {ref_name(node["$ref"])} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(references(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(references(value) for value in node))
    return set()


def fill_missing_schemas(spec: Schema) -> None:
    """Add the schemas of models a route names only by $ref (a hand-written request body),
    from the pydantic model of that name in app.schemas."""
    import importlib
    import pkgutil

    from pydantic import BaseModel

    import app.schemas

    models: dict[str, type[BaseModel]] = {}
    for module_info in sorted(pkgutil.iter_modules(app.schemas.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"app.schemas.{module_info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseModel):
                models.setdefault(value.__name__, value)
    components = spec.setdefault("components", {}).setdefault("schemas", {})
    while missing := sorted((references(spec) - set(components)) & set(models)):
        for name in missing:
            schema = models[name].model_json_schema(ref_template="#/components/schemas/{model}")
            for nested, definition in schema.pop("$defs", {}).items():
                components.setdefault(nested, definition)
            components[name] = schema


def cell(text: str) -> str:
    """Text that stays inside one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def schema_link(name: str, components: Schema) -> str:
    if name in components:
        return f"[`{name}`](#{anchor(name)})"
    return f"`{name}`"


def anchor(name: str) -> str:
    return "schema-" + name.lower().replace("_", "-")


def type_of(schema: Schema, components: Schema) -> str:
    """A short, readable type: `string`, [`BatchOut`](#…), array of …, `a` \\| `b`, … or null."""
    if "$ref" in schema:
        return schema_link(ref_name(schema["$ref"]), components)
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return " \\| ".join(f"`{json.dumps(value)}`" for value in schema["enum"])
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            options = [option for option in schema[combinator] if option.get("type") != "null"]
            text = " or ".join(type_of(option, components) for option in options)
            if len(options) < len(schema[combinator]):
                text += " or null"
            return text
    if "allOf" in schema:
        return " and ".join(type_of(part, components) for part in schema["allOf"])
    kind = schema.get("type")
    if kind == "array":
        return f"array of {type_of(schema.get('items', {}), components)}"
    if kind == "object":
        values = schema.get("additionalProperties")
        if isinstance(values, dict) and values:
            return f"object of {type_of(values, components)}"
        return "object"
    if isinstance(kind, list):
        return " or ".join(f"`{part}`" for part in kind)
    if kind is None:
        return "any"
    return f"`{kind}` ({schema['format']})" if "format" in schema else f"`{kind}`"


CONSTRAINTS = (
    ("minimum", "≥ {}"),
    ("exclusiveMinimum", "> {}"),
    ("maximum", "≤ {}"),
    ("exclusiveMaximum", "< {}"),
    ("minLength", "at least {} characters"),
    ("maxLength", "at most {} characters"),
    ("minItems", "at least {} items"),
    ("maxItems", "at most {} items"),
    ("pattern", "matches `{}`"),
)


def notes_of(schema: Schema) -> str:
    """Description, constraints and default of a field or parameter, in one cell."""
    parts = [schema["description"]] if schema.get("description") else []
    # Bounds sit on the non-null branch of an optional field.
    branches = [schema, *schema.get("anyOf", [])]
    for key, template in CONSTRAINTS:
        for branch in branches:
            if key in branch:
                parts.append(template.format(branch[key]))
                break
    if "default" in schema:
        parts.append(f"default `{json.dumps(schema['default'])}`")
    return cell("; ".join(parts))


def fields_table(schema: Schema, components: Schema) -> list[str]:
    """| field | type | required | notes | for an object schema."""
    properties = schema.get("properties", {})
    if not properties:
        return []
    required = set(schema.get("required", []))
    lines = ["| field | type | required | notes |", "|---|---|---|---|"]
    for name, field in properties.items():
        lines.append(
            f"| `{name}` | {type_of(field, components)} | {'yes' if name in required else 'no'} "
            f"| {notes_of(field)} |"
        )
    return lines


def operation_section(method: str, path: str, operation: Schema, spec: Schema) -> list[str]:
    components = spec.get("components", {}).get("schemas", {})
    lines = [f"### `{method.upper()} {path}`", ""]
    if operation.get("summary"):
        lines += [f"**{operation['summary']}**", ""]
    if operation.get("description"):
        lines += [operation["description"].strip(), ""]
    security = [name for requirement in operation.get("security", []) for name in requirement]
    if security:
        lines += [f"Auth: {', '.join(f'`{name}` (Bearer)' for name in security)}.", ""]
    else:
        lines += ["Auth: none.", ""]

    parameters = operation.get("parameters", [])
    if parameters:
        lines += [
            "Parameters:",
            "",
            "| name | in | type | required | notes |",
            "|---|---|---|---|---|",
        ]
        for parameter in parameters:
            schema = {**parameter.get("schema", {})}
            if parameter.get("description"):
                schema["description"] = parameter["description"]
            lines.append(
                f"| `{parameter['name']}` | {parameter['in']} | {type_of(schema, components)} "
                f"| {'yes' if parameter.get('required') else 'no'} | {notes_of(schema)} |"
            )
        lines.append("")

    body = operation.get("requestBody")
    if body:
        required = "required" if body.get("required") else "optional"
        lines += [f"Request body ({required}):", ""]
        for content_type, content in body.get("content", {}).items():
            schema = content.get("schema", {})
            if "$ref" in schema:
                lines += [f"- `{content_type}`: {type_of(schema, components)}", ""]
                continue
            lines += [f"- `{content_type}`:", ""]
            table = fields_table(schema, components)
            lines += [*table, ""] if table else [f"  {type_of(schema, components)}", ""]

    lines += ["Responses:", "", "| status | meaning | body |", "|---|---|---|"]
    for status, response in sorted(operation.get("responses", {}).items()):
        bodies = [
            f"`{content_type}`"
            + (f" {type_of(content['schema'], components)}" if content.get("schema") else "")
            for content_type, content in response.get("content", {}).items()
        ]
        lines.append(
            f"| {status} | {cell(response.get('description', ''))} | {', '.join(bodies) or '—'} |"
        )
    lines.append("")
    return lines


def schema_section(name: str, schema: Schema, components: Schema) -> list[str]:
    lines = [f'<a id="{anchor(name)}"></a>', "", f"### `{name}`", ""]
    if schema.get("description"):
        lines += [schema["description"].strip(), ""]
    table = fields_table(schema, components)
    if table:
        lines += table
    else:
        lines.append(type_of(schema, components))
    if schema.get("additionalProperties") is False:
        lines += ["", "Other fields are refused (422)."]
    lines.append("")
    return lines


def render(spec: Schema) -> str:
    """docs/api-reference.md for this OpenAPI schema."""
    info = spec["info"]
    components = spec.get("components", {}).get("schemas", {})
    operations: dict[str, list[tuple[str, str, Schema]]] = {}
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                tag = (item[method].get("tags") or ["other"])[0]
                operations.setdefault(tag, []).append((method, path, item[method]))

    lines = [
        "# API reference",
        "",
        "<!-- Generated from the OpenAPI schema by scripts/api_reference.py; do not edit by",
        "     hand: run `.venv/bin/python scripts/api_reference.py` after changing the API. -->",
        "",
        f"{info['title']} {info['version']}: {info.get('summary', '').strip()} Every operation",
        "of the schema the API serves at `/openapi.json` (interactive at `/docs`), then every",
        "object it names. [api.md](api.md) is the guide: authentication, limits, idempotency,",
        'and what the fields mean together. Errors are `{"detail": "..."}`',
        "([`ErrorOut`](#schema-errorout)) naming the field and the problem.",
        "",
        "Authentication:",
        "",
    ]
    for name, scheme in sorted(spec.get("components", {}).get("securitySchemes", {}).items()):
        kind = scheme.get("scheme", scheme.get("type", ""))
        lines.append(
            f"- `{name}`: `Authorization: {kind.title()} …` — {scheme.get('description', '')}"
        )
    lines += ["", "## Operations", ""]
    for tag, entries in operations.items():
        lines.append(f"- **{tag}**: " + ", ".join(f"`{m.upper()} {p}`" for m, p, _ in entries))
    lines.append("")
    for tag, entries in operations.items():
        lines += [f"## {tag}", ""]
        for method, path, operation in entries:
            lines += operation_section(method, path, operation, spec)
    lines += ["## Schemas", ""]
    for name in sorted(components):
        lines += schema_section(name, components[name], components)
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    text = render(openapi_schema())
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale: run scripts/api_reference.py", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
