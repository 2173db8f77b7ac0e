"""Rollouts over REST: start (deploy with a mode), report, policy, promote and abort."""

from __future__ import annotations

import pytest

from model_mcp import samples
from tests.rest.conftest import API, assert_problem
from tests.rest.test_endpoints import imported

pytestmark = pytest.mark.anyio


async def test_a_canary_over_rest_from_start_to_promotion(api, packages):
    await imported(api, packages, "v1", seed=1)
    await imported(api, packages, "v2", seed=1, created_at="2026-11-21T00:00:00Z")
    assert (await api.post(f"{API}/models/v1/deploy")).status_code == 200
    assert_problem(await api.get(f"{API}/rollout"), "invalid_state", 409)
    assert_problem(await api.post(f"{API}/models/v2/deploy", json={"mode": "canary"}), "invalid_input", 422)
    started = await api.post(f"{API}/models/v2/deploy", json={"mode": "canary", "traffic_percent": 40})
    assert started.status_code == 200 and started.json()["mode"] == "canary"
    versions = []
    for i in range(40):
        answer = await api.post(f"{API}/predict", json={"rows": samples.sample_rows(2, 8, seed=i),
                                                       "routing_key": f"user-{i}"})
        assert answer.status_code == 200, answer.text
        versions.append(answer.json()["model_version"])
    assert set(versions) == {"v1", "v2"}
    csv = "bytes_in,bytes_out,packets_in,packets_out,duration_s,dst_port_entropy,conn_rate,error_rate\n" + "0,0,0,0,0,0,0,0\n"
    again = await api.post(f"{API}/predict?routing_key=user-3", content=csv, headers={"Content-Type": "text/csv"})
    assert again.json()["model_version"] == versions[3]  # the same key, the same side, whatever the body
    versions.append(again.json()["model_version"])
    report = (await api.get(f"{API}/rollout", params={"model_name": "network-anomaly"})).json()
    assert report["requests"]["candidate"] == versions.count("v2") and report["verdict"] == "hold"

    policy = await api.put(f"{API}/rollout/policy", json={"model_name": "network-anomaly", "min_compared_rows": 5})
    assert policy.status_code == 200 and policy.json()["policy"]["min_compared_rows"] == 5
    assert (await api.get(f"{API}/rollout/policy", params={"model_name": "network-anomaly"})).json()["policy"]
    assert (await api.get(f"{API}/rollout")).json()["verdict"] == "promote"
    assert_problem(await api.put(f"{API}/rollout/policy", json={"model_name": "network-anomaly", "min_agreement": 2}),
                   "invalid_input", 422)
    promoted = await api.post(f"{API}/rollout/promote", json={})
    assert promoted.status_code == 200 and promoted.json()["deployed_version"] == "v2"
    assert_problem(await api.post(f"{API}/rollout/abort"), "invalid_state", 409)
    cleared = await api.delete(f"{API}/rollout/policy", params={"model_name": "network-anomaly"})
    assert cleared.json()["policy"] is None


async def test_abort_over_rest_leaves_the_primary(api, packages):
    await imported(api, packages, "v1", seed=1)
    await imported(api, packages, "v2", seed=2, created_at="2026-11-21T00:00:00Z")
    await api.post(f"{API}/models/v1/deploy")
    assert (await api.post(f"{API}/models/v2/deploy", json={"mode": "shadow"})).json()["mode"] == "shadow"
    aborted = await api.post(f"{API}/rollout/abort", json={"model_name": "network-anomaly"})
    assert aborted.status_code == 200 and aborted.json()["deployed_version"] == "v1"
    answer = await api.post(f"{API}/predict", json={"rows": samples.sample_rows(1, 8, seed=1)})
    assert answer.json()["model_version"] == "v1"
