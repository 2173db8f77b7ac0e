"""Every REST endpoint answering what the same use case answers over MCP (success paths)."""

from __future__ import annotations

import json

import base64

import httpx2
import pytest

from model_mcp import samples
from tests.conftest import store_state
from tests.rest.conftest import API, BASE, assert_problem

pytestmark = pytest.mark.anyio


async def upload(api: httpx2.AsyncClient, packages, **kwargs) -> httpx2.Response:
    path = packages(**kwargs)
    return await api.post(f"{API}/models", files={"package": (path.name, path.read_bytes(), "application/zip")})


async def imported(api: httpx2.AsyncClient, packages, version: str = "v1", **kwargs) -> str:
    response = await upload(api, packages, version=version, **kwargs)
    assert response.status_code == 201, response.text
    return response.json()["version"]


async def test_multipart_upload_imports_with_201_and_the_same_package_again_answers_200(api, packages, home):
    path = packages(version="v1")
    first = await api.post(f"{API}/models", files={"package": ("model-v1.zip", path.read_bytes(), "application/zip")})
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["version"] == "v1" and body["status"] == "available" and body["already_present"] is False
    assert body["validation"]["passed"] is True
    before = store_state(home)
    again = await api.post(f"{API}/models", files={"package": ("again.zip", path.read_bytes(), "application/zip")})
    assert again.status_code == 200 and again.json()["already_present"] is True
    assert store_state(home)["models"] == before["models"]
    assert not list((home / "staging").iterdir()), "the streamed upload must not stay in staging"
    history = (await api.get(f"{API}/history")).json()["events"]
    assert history[0]["event"] == "import" and "model-v1.zip" in history[0]["detail"]


async def test_a_raw_zip_body_and_a_json_path_and_base64_import_too(api, packages):
    raw = packages(version="raw")
    response = await api.post(f"{API}/models", content=raw.read_bytes(), headers={"Content-Type": "application/zip"})
    assert response.status_code == 201 and response.json()["version"] == "raw"
    by_path = packages(version="bypath")
    response = await api.post(f"{API}/models", json={"path": str(by_path)})
    assert response.status_code == 201 and response.json()["version"] == "bypath"
    inline = packages(version="inline")
    response = await api.post(f"{API}/models", json={"content_base64": base64.b64encode(inline.read_bytes()).decode(),
                                                     "filename": "inline.zip"})
    assert response.status_code == 201 and response.json()["version"] == "inline"


async def test_list_get_and_filters(api, packages):
    await imported(api, packages, "v1", created_at="2026-11-01T00:00:00Z")
    await imported(api, packages, "v2", created_at="2026-11-02T00:00:00Z", model_name="other")
    listing = (await api.get(f"{API}/models")).json()
    assert [m["version"] for m in listing["models"]] == ["v2", "v1"] and listing["total"] == 2
    assert listing["deployed_version"] is None
    page = (await api.get(f"{API}/models", params={"limit": 1, "offset": 1})).json()
    assert [m["version"] for m in page["models"]] == ["v1"] and page["total"] == 2
    named = (await api.get(f"{API}/models", params={"model_name": "other", "status": "available"})).json()
    assert [m["version"] for m in named["models"]] == ["v2"]
    one = (await api.get(f"{API}/models/v1")).json()
    assert one["entry"]["version"] == "v1" and "model.joblib" in one["files"]
    assert one["metadata"]["feature_names"] == samples.feature_names_for(8)


async def test_validate_then_read_the_saved_report(api, packages):
    await imported(api, packages)
    report = await api.post(f"{API}/models/v1/validate", json={"deep": False})
    assert report.status_code == 200, report.text
    assert report.json()["deep"] is False and report.json()["passed"] is True
    saved = await api.get(f"{API}/models/v1/validation")
    assert saved.status_code == 200 and saved.json()["generated_at"] == report.json()["generated_at"]
    deep = await api.post(f"{API}/models/v1/validate")  # no body: deep by default
    assert deep.json()["deep"] is True


async def test_deploy_predict_rollback_and_delete(api, packages):
    await imported(api, packages, "v1")
    await imported(api, packages, "v2", seed=5)
    deployed = await api.post(f"{API}/models/v1/deploy")
    assert deployed.status_code == 200 and deployed.json()["deployed_version"] == "v1"
    assert (await api.post(f"{API}/models/v2/deploy", json={})).json()["previous_version"] == "v1"
    rows = samples.sample_rows(3)
    answer = await api.post(f"{API}/predict", json={"rows": rows})
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == "v2" and answer.json()["n_rows"] == 3
    back = await api.post(f"{API}/rollback")
    assert back.status_code == 200 and back.json()["deployed_version"] == "v1" and back.json()["rolled_back"]
    to = await api.post(f"{API}/rollback", json={"to_version": "v2"})
    assert to.json()["deployed_version"] == "v2"
    gone = await api.delete(f"{API}/models/v1")
    assert gone.status_code == 200 and gone.json() == {"version": "v1", "deleted": True, "files_removed": True}
    assert_problem(await api.get(f"{API}/models/v1"), "not_found", 404)


async def test_predict_takes_csv_with_a_header_row(api, packages):
    await imported(api, packages)
    await api.post(f"{API}/models/v1/deploy")
    names = samples.feature_names_for(8)
    rows = samples.sample_rows(4)
    text = ",".join(names) + "\n" + "\n".join(",".join(repr(v) for v in row) for row in rows) + "\n"
    by_csv = await api.post(f"{API}/predict", content=text, headers={"Content-Type": "text/csv"},
                            params={"version": "v1"})
    assert by_csv.status_code == 200, by_csv.text
    by_json = await api.post(f"{API}/predict", json={"rows": rows})
    assert by_csv.json()["scores"] == pytest.approx(by_json.json()["scores"])
    assert by_csv.json()["labels"] == by_json.json()["labels"]
    shuffled = ",".join(reversed(names)) + "\n" + ",".join(repr(v) for v in reversed(rows[0])) + "\n"
    one = await api.post(f"{API}/predict", content=shuffled, headers={"Content-Type": "text/csv"})
    assert one.json()["scores"] == pytest.approx(by_json.json()["scores"][:1])
    bad = "bytes_in\nnot-a-number\n"
    assert_problem(await api.post(f"{API}/predict", content=bad, headers={"Content-Type": "text/csv"}),
                   "invalid_input", 422)


async def test_a_large_json_body_answers_as_rows_given_as_objects(api, packages):
    """10,000 rows as a matrix (parsed into an array, row_matrices) and as objects (json.loads): the
    same answer; a ragged or non-UTF-8 body is refused as before."""
    await imported(api, packages)
    await api.post(f"{API}/models/v1/deploy")
    rows = samples.sample_rows(10_000)
    names = samples.feature_names_for(8)
    as_matrix = await api.post(f"{API}/predict", json={"rows": rows, "exact_scores": True})
    as_objects = await api.post(f"{API}/predict", json={"rows": [dict(zip(names, r, strict=True)) for r in rows],
                                                        "exact_scores": True})
    assert as_matrix.status_code == as_objects.status_code == 200, as_matrix.text
    for field in ("labels", "scores", "anomaly_count", "n_rows"):
        assert as_matrix.json()[field] == as_objects.json()[field], field
    ragged = [list(r) for r in rows]
    ragged[9] = ragged[9][:5]
    problem = assert_problem(await api.post(f"{API}/predict", json={"rows": ragged}), "invalid_input", 422)
    assert "row 9" in problem["detail"]
    body = json.dumps({"rows": rows, "version": "\udcff"}).encode().replace(b"\\udcff", b"\xff")
    assert_problem(await api.post(f"{API}/predict", content=body, headers={"Content-Type": "application/json"}),
                   "invalid_input", 422)


async def test_predict_takes_exact_scores_and_summary_only_as_the_tool_does(api, packages):
    await imported(api, packages)
    await api.post(f"{API}/models/v1/deploy")
    rows = samples.sample_rows(40) + samples.outliers(5).tolist()
    exact = await api.post(f"{API}/predict", json={"rows": rows, "exact_scores": True})
    assert exact.status_code == 200, exact.text
    exact = exact.json()
    assert exact["score_digits"] is None and exact["summary"] is None
    # The very figures the core computes (the MCP tool calls the same use case).
    core = api.manager.predict(rows=rows, exact_scores=True)
    assert exact["scores"] == core["scores"] and exact["labels"] == core["labels"]
    rounded = (await api.post(f"{API}/predict", json={"rows": rows})).json()
    assert rounded["score_digits"] == 6
    assert rounded["scores"] == [float(f"{s:.6g}") for s in exact["scores"]]
    assert rounded["scores"] != exact["scores"], "exact scores carry more than 6 digits"
    assert rounded["labels"] == exact["labels"]

    summary = await api.post(f"{API}/predict", json={"rows": rows, "summary_only": True, "exact_scores": True})
    assert summary.status_code == 200, summary.text
    summary = summary.json()
    assert summary["labels"] == [] and summary["scores"] is None and summary["is_anomaly"] is None
    assert summary["n_rows"] == 45 and summary["anomaly_count"] == exact["anomaly_count"] >= 5
    flagged = [i for i, a in enumerate(exact["is_anomaly"]) if a]
    assert summary["summary"]["anomaly_indices"] == flagged and {40, 41, 42, 43, 44} <= set(flagged)
    assert summary["summary"]["label_counts"] == {"-1": exact["labels"].count(-1), "1": exact["labels"].count(1)}
    quantiles = summary["summary"]["score_quantiles"]
    ordered = sorted(exact["scores"])
    assert quantiles["min"] == ordered[0] and quantiles["max"] == ordered[-1]
    assert quantiles["p50"] == ordered[22]  # 45 rows: the median is the 23rd

    # text/csv takes the same options in the query; a JSON body must carry them itself.
    names = samples.feature_names_for(8)
    text = ",".join(names) + "\n" + "\n".join(",".join(repr(v) for v in row) for row in rows) + "\n"
    by_csv = await api.post(f"{API}/predict", content=text, headers={"Content-Type": "text/csv"},
                            params={"summary_only": "true", "exact_scores": "true"})
    assert by_csv.status_code == 200, by_csv.text
    assert by_csv.json()["summary"] == summary["summary"]
    body = assert_problem(await api.post(f"{API}/predict", json={"rows": rows}, params={"summary_only": "true"}),
                          "invalid_input", 422)
    assert "`summary_only` in the body" in body["detail"]
    assert_problem(await api.post(f"{API}/predict", json={"rows": rows, "summary_only": "some"}), "invalid_input", 422)
    assert_problem(await api.post(f"{API}/predict", json={"rows": rows, "exact": True}), "invalid_input", 422)


async def test_a_large_drift_body_answers_as_rows_given_as_objects(api, packages):
    """/drift's body goes through FastAPI: its matrices are read as arrays too (a `_RowsRequest`); the
    report equals the one for the same rows as objects, and a body that is no JSON is refused as before."""
    await imported(api, packages)
    await api.post(f"{API}/models/v1/deploy")
    names = samples.feature_names_for(8)
    current = [[round(v, 1) for v in row] for row in samples.outliers(20_000).tolist()]
    reference = [[round(v, 1) for v in row] for row in samples.sample_rows(20_000)]
    as_matrix = await api.post(f"{API}/drift", json={"current": current, "reference": reference})
    as_objects = await api.post(f"{API}/drift", json={
        "current": [dict(zip(names, r, strict=True)) for r in current],
        "reference": [dict(zip(names, r, strict=True)) for r in reference]})
    assert as_matrix.status_code == as_objects.status_code == 200, as_matrix.text
    assert as_matrix.json()["features"] == as_objects.json()["features"]
    assert as_matrix.json()["dataset_drift"] and as_matrix.json()["n_current"] == 20_000
    broken = json.dumps({"current": current}).encode()[:-2]
    assert_problem(await api.post(f"{API}/drift", content=broken, headers={"Content-Type": "application/json"}),
                   "invalid_input", 422)


async def test_performance_drift_feedback_and_history(api, packages):
    await imported(api, packages)
    await api.post(f"{API}/models/v1/deploy")
    answer = (await api.post(f"{API}/predict", json={"rows": samples.sample_rows(200)})).json()
    perf = await api.get(f"{API}/performance")
    assert perf.status_code == 200 and perf.json()["n_rows"] == 200 and perf.json()["version"] == "v1"
    assert (await api.get(f"{API}/performance", params={"version": "v1"})).json()["n_requests"] == 1
    drift = await api.post(f"{API}/drift", json={"window": 200})
    assert drift.status_code == 200, drift.text
    assert drift.json()["n_current"] == 200 and drift.json()["current_source"] == "recent_window"
    labels = [1] * 200
    feedback = await api.post(f"{API}/feedback", json={"request_id": answer["request_id"], "labels": labels})
    assert feedback.status_code == 200 and feedback.json()["n_labels"] == 200
    deployments = (await api.get(f"{API}/history", params={"kind": "deployments", "limit": 5})).json()["events"]
    assert [e["event"] for e in deployments] == ["deploy"]
    span = await api.get(f"{API}/performance", params={"since": "2000-01-01T00:00:00Z", "bucket_s": 300})
    assert span.status_code == 200, span.text
    assert sum(bucket["rows"] for bucket in span.json()["series"]) == 200
    assert (await api.get(f"{API}/performance", params={"bucket_s": 7})).status_code == 422
    alerts = await api.get(f"{API}/alerts", params={"version": "v1", "limit": 5})
    assert alerts.status_code == 200 and isinstance(alerts.json()["alerts"], list)
    bad = await api.get(f"{API}/alerts", params={"severity": "loud"})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_input"
    assert_problem(await api.get(f"{API}/alerts", params={"limit": 1001}), "invalid_input", 422)
    # The reports on the recent window are kept; the one above is the newest, as the resource answers.
    kept = await api.get(f"{API}/models/v1/drift", params={"limit": 5})
    assert kept.status_code == 200, kept.text
    assert kept.json()["stored"] is True and kept.json()["version"] == "v1"
    assert [r["at"] for r in kept.json()["reports"]] == [drift.json()["generated_at"]]
    assert kept.json() == api.manager.drift_history(version="v1", limit=5)
    assert_problem(await api.get(f"{API}/models/nope/drift"), "not_found", 404)


async def test_training_service_scan_import_and_discover(make_api, tmp_path, home):
    training = tmp_path / "training"
    samples.write_training_service(training)
    async with make_api(training_dir=training) as api:
        scan = await api.get(f"{API}/training")
        assert scan.status_code == 200 and scan.json()["imported"] == []
        assert len(scan.json()["packages"]) == 3
        done = await api.post(f"{API}/training/import", json={"import_latest": True})
        assert done.status_code == 200 and done.json()["imported"] == ["20261115_080000"]
        named = await api.post(f"{API}/training/import", json={"import_versions": ["20261101_080000"]})
        assert named.json()["imported"] == ["20261101_080000"]
        # a folder placed by hand under models/
        samples.write_folder(samples.package_files(version="manual1"), home / "models" / "manual1")
        found = await api.post(f"{API}/discover")
        assert found.status_code == 200 and found.json()["registered"] == ["manual1"]


async def test_health_readiness_and_the_openapi_document(api, packages):
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    ready = await api.get("/readyz")
    assert ready.status_code == 200 and ready.json()["state"] == "nothing_deployed"
    await imported(api, packages)
    await api.post(f"{API}/models/v1/deploy")
    ready = await api.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {
        "ready": True, "state": "serving", "version": "v1", "detail": ready.json()["detail"]}
    document = (await api.get(f"{API}/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    assert document["servers"] == [{"url": "/api/v1"}]
    assert {"/models", "/models/{version}", "/models/{version}/validate", "/models/{version}/validation",
            "/models/{version}/deploy", "/rollback", "/predict", "/performance", "/drift", "/feedback",
            "/history", "/training", "/training/import", "/discover", "/alerts",
            "/models/{version}/drift"} <= set(document["paths"])
    schemas = document["components"]["schemas"]
    assert {"ImportResult", "PredictAnswer", "Problem", "PredictRequest", "ValidationReport"} <= set(schemas)
    ok = document["paths"]["/predict"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/PredictAnswer"}
    assert {"exact_scores", "summary_only"} <= set(schemas["PredictRequest"]["properties"])
    assert {"score_digits", "summary"} <= set(schemas["PredictAnswer"]["properties"])
    csv_options = {p["name"] for p in document["paths"]["/predict"]["post"]["parameters"]}
    assert csv_options == {"version", "model_name", "exact_scores", "summary_only", "routing_key"}


async def test_readyz_is_503_while_the_deployed_model_failed_to_load(make_app, packages, home):
    app, manager = make_app()
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=BASE) as api:
        await imported(api, packages)
        await api.post(f"{API}/models/v1/deploy")
    # Damage the deployed model, then start a new server over the same home: its start load fails.
    (home / "models" / "v1" / "model.joblib").write_bytes(b"\x00" * 64)
    app, manager = make_app()
    thread = manager.load_deployed_in_background()
    assert thread is not None
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=BASE) as api:
        thread.join(timeout=60)
        ready = await api.get("/readyz")
        assert ready.status_code == 503 and ready.json()["state"] == "load_failed"
        assert ready.json()["version"] == "v1"
        metrics = (await api.get("/metrics")).text
        assert 'model_mcp_ready{state="load_failed"} 0.0' in metrics


async def test_readyz_is_503_while_the_deployed_model_loads(make_app, packages):
    app, manager = make_app()
    manager.runtime.begin_loading("v9")  # the state serve() puts a server in before its start load ends
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=BASE) as api:
        ready = await api.get("/readyz")
        assert ready.status_code == 503 and ready.json()["state"] == "loading" and ready.json()["version"] == "v9"

