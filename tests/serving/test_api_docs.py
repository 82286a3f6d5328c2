"""docs/api.md is the service's OpenAPI rendered (``make api-docs``), never a hand-kept copy."""

from pathlib import Path

from slipcast.tools.api_docs import openapi, render

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_the_api_reference_is_current():
    assert DOC.read_text() == render(openapi()), "docs/api.md is stale: run `make api-docs`"


def test_the_reference_names_every_route_and_schema():
    spec = openapi()
    text = render(spec)
    for path, operations in spec["paths"].items():
        for method in operations:
            assert f"### `{method.upper()} {path}`" in text
    for name in spec["components"]["schemas"]:
        assert f"### {name}\n" in text
