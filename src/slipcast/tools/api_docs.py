"""``make api-docs``: the HTTP API's reference, docs/api.md, written from the service's own OpenAPI.

Nothing in it is written by hand: each route with its parameters, body and answers, then each
schema with its fields, types and descriptions, in the OpenAPI's order. A test
(tests/serving/test_api_docs.py) fails when the file is not what this writes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from slipcast.core.settings import get_settings

HEADER = """# HTTP API reference (v1)

Generated from the service's OpenAPI by `make api-docs` (`slipcast.tools.api_docs`); do not edit.
The same reference is interactive at `/docs` and machine-readable at `/openapi.json` of a running
service. Times carry a UTC offset. With `serving.api_keys` set, every route but the probes and the
docs needs the `X-API-Key` header.
"""


def _type(schema: dict) -> str:
    """A schema's type in a few words: a reference's name, an array's item type, an enum's values."""
    if "$ref" in schema:
        return f"[{schema['$ref'].rsplit('/', 1)[-1]}](#{schema['$ref'].rsplit('/', 1)[-1].lower()})"
    if "anyOf" in schema:
        return " or ".join(_type(s) for s in schema["anyOf"])
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema and isinstance(schema["additionalProperties"], dict):
        return f"object of {_type(schema['additionalProperties'])}"
    return f"{kind} ({schema['format']})" if "format" in schema else str(kind)


def _cell(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def _route(path: str, method: str, op: dict) -> list[str]:
    lines = [f"### `{method.upper()} {path}`", ""]
    if op.get("summary"):
        lines += [op["summary"], ""]
    if op.get("description"):
        lines += [op["description"].strip(), ""]
    params = op.get("parameters", [])
    if params:
        lines += ["| parameter | in | type | required | description |", "|---|---|---|---|---|"]
        lines += [f"| `{p['name']}` | {p['in']} | {_type(p.get('schema', {}))} | {'yes' if p.get('required') else 'no'} "
                  f"| {_cell(p.get('description') or p.get('schema', {}).get('description'))} |" for p in params]
        lines.append("")
    body = op.get("requestBody", {}).get("content", {})
    for media, content in body.items():
        lines += [f"Body ({media}): {_type(content.get('schema', {}))}", ""]
    answers = op.get("responses", {})
    if answers:
        lines += ["| status | answer |", "|---|---|"]
        for status, answer in answers.items():
            answered: dict = next(iter(answer.get("content", {}).values()), {})
            schema = answered.get("schema")
            what = _cell(answer.get("description"))
            lines.append(f"| {status} | {what}{': ' + _type(schema) if schema else ''} |")
        lines.append("")
    return lines


def _schema(name: str, schema: dict) -> list[str]:
    lines = [f"### {name}", ""]
    if schema.get("description"):
        lines += [_cell(schema["description"]), ""]
    if "enum" in schema:
        return lines + ["One of " + ", ".join(f"`{v}`" for v in schema["enum"]) + ".", ""]
    fields = schema.get("properties", {})
    if fields:
        required = set(schema.get("required", []))
        lines += ["| field | type | required | description |", "|---|---|---|---|"]
        lines += [f"| `{field}` | {_type(spec)} | {'yes' if field in required else 'no'} | {_cell(spec.get('description'))} |"
                  for field, spec in fields.items()]
        lines.append("")
    return lines


def render(spec: dict) -> str:
    """The Markdown reference of an OpenAPI document."""
    lines = [HEADER, "## Routes", ""]
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            lines += _route(path, method, op)
    lines += ["## Schemas", ""]
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        lines += _schema(name, schema)
    return "\n".join(lines).rstrip() + "\n"


def openapi() -> dict:
    """The service's OpenAPI document, as `/openapi.json` answers it (no model or store needed)."""
    from slipcast.serving.app import create_app

    return create_app(get_settings()).openapi()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", help="the Markdown file to write (docs/api.md)")
    args = parser.parse_args(argv)
    Path(args.out).write_text(render(openapi()))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
