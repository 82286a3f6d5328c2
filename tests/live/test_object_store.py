"""A store on object storage: the canonical tables read from an S3 bucket on a loopback S3
server (moto's, speaking the S3 REST API), served exactly as from a local folder."""

from __future__ import annotations

import pyarrow.fs as pafs
import pytest
from fastapi.testclient import TestClient
from moto.server import ThreadedMotoServer

from slipcast.ingest.tables import Tables, fingerprint, read_tables, store_signature, write_tables
from slipcast.serving.app import create_app
from tests.helpers import busiest_time, refreshed_under_load, without_milestone


@pytest.fixture(scope="module")
def bucket(tmp_path_factory):
    """An S3 server on loopback with credentials in the environment (as a deployment sets them)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "slipcast-test")
        env.setenv("AWS_SECRET_ACCESS_KEY", "slipcast-test-secret")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        options = f"endpoint_override=http://{host}:{port}&scheme=http&region=us-east-1"
        s3, _ = pafs.FileSystem.from_uri(f"s3://tracker?{options}&allow_bucket_creation=true")
        s3.create_dir("tracker")
        yield {"s3": s3, "uri": lambda path: f"s3://tracker/{path}?{options}"}
    server.stop()


def upload(tables: Tables, bucket, path: str, tmp_path) -> str:
    """Write the tables as `slipcast import` does, then copy the folder into the bucket."""
    local = tmp_path / path
    write_tables(tables, local, force=True)
    pafs.copy_files(str(local), f"tracker/{path}", source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=bucket["s3"])
    return bucket["uri"](path)


def test_tables_read_from_a_bucket_equal_the_folder_they_were_copied_from(small_history, bucket, tmp_path):
    uri = upload(small_history, bucket, "store", tmp_path)
    assert fingerprint(read_tables(uri)) == fingerprint(read_tables(tmp_path / "store")) == fingerprint(small_history)
    signature = store_signature(uri)
    assert store_signature(uri) == signature  # a listing, stable while nothing changes
    upload(Tables(small_history.milestones.iloc[1:], small_history.tickets, small_history.events, small_history.links),
           bucket, "store", tmp_path)
    assert store_signature(uri) != signature  # a rewritten object is seen
    with pytest.raises(FileNotFoundError, match=r"s3://tracker/nothing-here/milestones\.parquet: canonical table "
                                                r"missing") as missing:
        read_tables(bucket["uri"]("nothing-here"))
    assert "endpoint_override" not in str(missing.value)  # a URI's options are never echoed


def test_the_service_answers_from_a_bucket_as_from_a_folder_and_follows_its_rewrites(trained, bucket, tmp_path):
    tables, s = trained["tables"], trained["settings"]
    uri = upload(tables, bucket, "served", tmp_path)
    now = busiest_time(tables)

    def app_on(store):
        return create_app(s.model_copy(update={"serving": s.serving.model_copy(update={"store": store,
                                                                                      "reload_seconds": 0.2})}),
                          clock=lambda: now.to_pydatetime())

    with TestClient(app_on(tmp_path / "served")) as client:
        folder = client.get("/v1/milestones", params={"limit": 500}).json()["items"]
    app = app_on(uri)
    with TestClient(app) as client:
        page = client.get("/v1/milestones", params={"limit": 500})
        assert page.status_code == 200, page.text
        assert page.json()["items"] == folder and len(folder) >= 3
        # the bucket's store rewritten: picked up, and no request fails meanwhile
        gone = folder[0]["milestone_id"]
        assert not refreshed_under_load(client, app, lambda: upload(without_milestone(tables, gone), bucket, "served",
                                                                    tmp_path))
        after = client.get("/v1/milestones", params={"limit": 500}).json()["items"]
    assert gone not in {m["milestone_id"] for m in after} and len(after) == len(folder) - 1
