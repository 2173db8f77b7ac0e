"""GET /api/v1/replicas through the real HTTP app: two servers on one PostgreSQL database, the answer
as the core gives it, refusals as problem details (tests/postgres.py: skipped without a database,
except in CI)."""

from __future__ import annotations

import anyio
import pytest

from model_mcp.core.schemas import ReplicasResult
from tests.conftest import REPLICA_BEAT_S as BEAT_S
from tests.rest.conftest import API, assert_problem
from tests.server.test_replicas import NET

pytestmark = pytest.mark.anyio


async def test_the_replicas_endpoint_lists_both_servers(make_api, replica_managers, packages, pg_url,
                                                       tmp_path):
    other = replica_managers("other")
    other.import_zip(path=str(packages(version="n1", model_name=NET, seed=1)))
    other.deploy(version="n1")
    async with make_api(database_url=pg_url, artifact_root=tmp_path / "shared", replica_heartbeat_s=BEAT_S) as api:
        api.manager.load_deployed_in_background()
        api.manager.start_heartbeat()

        async def both() -> dict | None:
            answer = (await api.get(f"{API}/replicas")).json()
            ok = answer["up"] == 2 and all(r["serves"] == {NET: "n1"} and r["current"] for r in answer["replicas"])
            return answer if ok else None

        answer = None
        for _ in range(400):
            answer = await both()
            if answer:
                break
            await anyio.sleep(0.05)
        assert answer, (await api.get(f"{API}/replicas")).json()
        ReplicasResult.model_validate(answer)
        assert answer["database"] is True and answer["missing"] == 0 and answer["note"] is None
        mine = [r for r in answer["replicas"] if r["this_process"]]
        assert [r["address"] for r in mine] == ["127.0.0.1:8765"]
        assert {r["address"] for r in answer["replicas"]} == {"127.0.0.1:8765", "127.0.0.1:9000"}

        assert_problem(await api.get(f"{API}/replicas", params={"state": "up"}), "invalid_input", 422)
        assert_problem(await api.post(f"{API}/replicas"), "method_not_allowed", 405)
        document = (await api.get(f"{API}/openapi.json")).json()
        assert document["paths"]["/replicas"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ReplicasResult"}


async def test_on_a_home_the_endpoint_answers_this_server_alone(make_api, packages):
    async with make_api() as api:
        api.manager.start_heartbeat()
        answer = (await api.get(f"{API}/replicas")).json()
        assert answer["database"] is False and answer["registry_generation"] is None
        assert [(r["address"], r["state"], r["current"], r["this_process"]) for r in answer["replicas"]] == [
            ("127.0.0.1:8765", "up", None, True)]
        assert "MODEL_MCP_DATABASE_URL" in answer["note"]


async def test_the_database_away_answers_storage_error(make_api, pg_relay, tmp_path):
    relay, url = pg_relay
    async with make_api(database_url=url, replica_heartbeat_s=BEAT_S) as api:
        api.manager.start_heartbeat()
        assert (await api.get(f"{API}/replicas")).status_code == 200
        relay.stop()
        body = assert_problem(await api.get(f"{API}/replicas"), "storage_error", 507)
        assert "unreachable" in body["detail"] and "@" not in body["detail"].split("(")[0]
        relay.start()
        ok = None
        for _ in range(200):
            ok = await api.get(f"{API}/replicas")
            if ok.status_code == 200:
                break
            await anyio.sleep(0.05)
        assert ok.status_code == 200 and ok.json()["up"] == 1
