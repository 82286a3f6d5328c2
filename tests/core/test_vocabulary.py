"""One home for each vocabulary: the canonical schema, the API's schemas and its routes spell
the words of ``core.vocabulary`` and no others."""

import pytest

from slipcast.core.vocabulary import Basis, Direction, EventField, ForecastStatus, LinkKind, MilestoneKind, TicketStatus, values
from slipcast.ingest.schema import EVENTS, LINKS, MILESTONES, TICKETS
from slipcast.tools.api_docs import openapi


def test_the_canonical_schema_takes_its_enumerations_from_the_vocabularies():
    assert MILESTONES.enums["kind"] == values(MilestoneKind)
    assert TICKETS.enums["status"] == values(TicketStatus)
    assert EVENTS.enums["field"] == values(EventField)
    assert LINKS.enums["kind"] == values(LinkKind)


@pytest.fixture(scope="module")
def spec():
    return openapi()


@pytest.mark.parametrize("vocabulary", [MilestoneKind, TicketStatus, EventField, LinkKind, ForecastStatus, Basis, Direction])
def test_the_api_states_each_vocabulary_once_with_its_words(spec, vocabulary):
    schemas = spec["components"]["schemas"]
    assert schemas[vocabulary.__name__]["enum"] == list(values(vocabulary))
    # no field spells the list again inline: every enumeration of these words is the shared one
    words = set(values(vocabulary))

    def inline(node):
        if isinstance(node, dict):
            if "enum" in node and set(node["enum"]) == words and node is not schemas[vocabulary.__name__]:
                yield node
            for value in node.values():
                yield from inline(value)
        elif isinstance(node, list):
            for value in node:
                yield from inline(value)

    assert list(inline(spec)) == []


def test_the_milestones_route_filters_kinds_by_the_vocabulary(spec):
    params = {p["name"]: p for p in spec["paths"]["/v1/milestones"]["get"]["parameters"]}
    refs = [s.get("$ref", "") for s in params["kind"]["schema"]["anyOf"]]
    assert "#/components/schemas/MilestoneKind" in refs
