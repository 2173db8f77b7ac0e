"""MCP and REST on one real server (uvicorn on a socket): one manager, one registry, one runtime."""

from __future__ import annotations

import httpx2
import pytest

from model_mcp import samples
from tests.helpers import call
from tests.rest.conftest import API, live_server
from tests.test_http import mcp_client

pytestmark = pytest.mark.anyio


async def test_mcp_and_rest_calls_interleaved_see_one_registry(make_app, packages):
    app, _ = make_app()
    with live_server(app) as base:
        async with httpx2.AsyncClient(base_url=base, timeout=60) as rest, mcp_client(f"{base}/mcp") as mcp:
            v1 = packages(version="v1")
            response = await rest.post(f"{API}/models", files={"package": ("v1.zip", v1.read_bytes(), "application/zip")})
            assert response.status_code == 201, response.text
            listed = await call(mcp, "list_models")
            assert [m["version"] for m in listed["models"]] == ["v1"]
            await call(mcp, "import_zip", path=str(packages(version="v2", seed=5)))
            assert {m["version"] for m in (await rest.get(f"{API}/models")).json()["models"]} == {"v1", "v2"}
            await call(mcp, "deploy", version="v2")
            answer = await rest.post(f"{API}/predict", json={"rows": samples.sample_rows(5)})
            assert answer.json()["model_version"] == "v2"
            report = await call(mcp, "performance_report")
            assert report["n_requests"] == 1 and report["n_rows"] == 5
            deployed = await rest.post(f"{API}/models/v1/deploy")
            assert deployed.json()["previous_version"] == "v2"
            assert (await call(mcp, "predict", rows=samples.sample_rows(1)))["model_version"] == "v1"
            feedback = await call(mcp, "record_feedback", request_id=(await rest.post(
                f"{API}/predict", json={"rows": samples.sample_rows(2)})).json()["request_id"], labels=[1, 1])
            assert feedback["n_labels"] == 2
            history = (await rest.get(f"{API}/history", params={"kind": "deployments"})).json()["events"]
            assert [e["version"] for e in history] == ["v1", "v2"]
            metrics = (await rest.get("/metrics")).text
            assert 'model_mcp_predict_requests_total{version="v1"} 2.0' in metrics
            assert 'model_mcp_lifecycle_events_total{event="deploy",outcome="ok"} 2.0' in metrics
