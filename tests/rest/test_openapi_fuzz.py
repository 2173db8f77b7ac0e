"""schemathesis against the served OpenAPI document, over a real socket: no 5xx, every answer in schema.

Property-based: for every operation, schemathesis generates requests from the document (valid and
edge-case paths, queries and bodies, multipart and raw uploads) and checks each response: not a
server error, a documented status, a documented content type, a body matching its schema. The
examples are bounded (EXAMPLES per operation, derandomized) so the run takes about a minute.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from model_mcp import samples
from tests.rest.conftest import API, live_server

EXAMPLES = 20
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.mark.slow
def test_the_served_document_holds_for_generated_requests(make_app, tmp_path):
    training = tmp_path / "training"
    samples.write_training_service(training)
    app, manager = make_app(training_dir=training)
    package = samples.build_package(tmp_path / "v1.zip", version="v1")
    manager.import_zip(path=str(package))
    manager.deploy(version="v1")
    with live_server(app) as base:
        schema = schemathesis.openapi.from_url(f"{base}{API}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 15
        statuses: list[int] = []
        for operation in operations:
            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
            @given(case=operation.as_strategy())
            def run(case: schemathesis.Case) -> None:
                response = case.call_and_validate(base_url=f"{base}{API}", checks=CHECKS, timeout=60)
                statuses.append(response.status_code)

            run()
        assert len(statuses) >= 5 * len(operations), "schemathesis generated too few requests"
        assert any(s < 300 for s in statuses) and any(s == 422 for s in statuses), sorted(set(statuses))
        # the server still serves what was deployed before the run, or what the run deployed
        assert manager.readiness().ready
