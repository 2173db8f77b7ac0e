"""The REST paths behind the same token and Host/Origin checks as /mcp, on a real server process."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest

from tests.rest.conftest import API, assert_problem
from tests.test_http import Running, running_server

TOKEN = "rest-secret"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running_server(tmp_path_factory.mktemp("rest-token"), token=TOKEN) as running:
        yield running


def get(server: Running, path: str, *, token: str | None = None, **headers: str) -> httpx2.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx2.get(f"http://127.0.0.1:{server.port}{path}", headers=headers, timeout=30)


@pytest.mark.parametrize("path", [f"{API}/models", f"{API}/replicas", f"{API}/openapi.json", "/metrics",
                                  f"{API}/nowhere"])
def test_every_api_path_needs_the_token(server, path):
    missing = get(server, path)
    assert_problem(missing, "unauthorized", 401)
    assert missing.headers["www-authenticate"] == 'Bearer realm="model-mcp"'
    wrong = get(server, path, token="not-it")
    assert_problem(wrong, "unauthorized", 401)
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert get(server, path, token=TOKEN).status_code == (404 if path.endswith("nowhere") else 200)


def test_the_probes_are_open(server):
    assert get(server, "/healthz").json() == {"status": "ok"}
    assert get(server, "/readyz").status_code == 200
    # also under a Host the server does not list: a kubelet probes the pod's IP
    assert get(server, "/healthz", Host="10.1.2.3:8080").status_code == 200


def test_a_foreign_host_or_origin_is_refused_even_with_the_token(server):
    assert_problem(get(server, f"{API}/models", token=TOKEN, Host="evil.example"), "misdirected_host", 421)
    assert_problem(get(server, "/metrics", token=TOKEN, Host="evil.example:80"), "misdirected_host", 421)
    assert_problem(get(server, f"{API}/models", token=TOKEN, Origin="http://evil.example"), "forbidden_origin", 403)
    same = get(server, f"{API}/models", token=TOKEN, Origin=f"http://127.0.0.1:{server.port}")
    assert same.status_code == 200


def test_the_token_is_checked_before_the_host(server):
    assert_problem(get(server, f"{API}/models", Host="evil.example"), "unauthorized", 401)


def test_without_a_token_loopback_answers_and_the_host_check_still_applies(tmp_path):
    with running_server(tmp_path, token=None) as running:
        assert get(running, f"{API}/models").status_code == 200
        assert_problem(get(running, f"{API}/models", Host="evil.example"), "misdirected_host", 421)
        assert_problem(get(running, f"{API}/models", Origin="http://evil.example"), "forbidden_origin", 403)
