"""Property-based run of the OpenAPI schema: no input, however odd, gets a 5xx."""

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hsettings

from slipcast.core.settings import get_settings
from slipcast.ingest.tables import write_tables
from slipcast.scoring.model_store import ModelStore
from slipcast.serving.app import create_app
from tests.helpers import busiest_time

# the schema does not depend on the model: the app is built now, its store filled below
_IDLE = get_settings().model_copy(update={"serving": get_settings().serving.model_copy(update={"reload_seconds": 0})})
STORE = ModelStore(_IDLE)
APP = create_app(_IDLE, store=STORE)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def champion_loaded(trained, tmp_path_factory):
    STORE.settings = trained["settings"]
    STORE.refresh()
    assert STORE.get("milestone") is not None
    live = APP.state.live  # the live endpoints answer from a store of the same history
    live.store = write_tables(trained["tables"], tmp_path_factory.mktemp("schema") / "store")
    now = busiest_time(trained["tables"]).to_pydatetime()
    live.clock = lambda: now
    assert live.refresh() and live.get().milestones


@schema.parametrize()
@hsettings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    response = case.call()
    assert response.status_code < 500, f"{case.method} {case.path}: {response.status_code} {response.text[:500]}"
