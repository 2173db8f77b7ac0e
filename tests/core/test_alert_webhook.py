"""The alert webhook against a real local HTTP server: success, a failing receiver, a slow one."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from model_mcp.core.alert_webhook import AlertWebhook, check_webhook_url
from model_mcp.core.alerts import AlertRecord


class Receiver:
    """A local http.server whose answers the test scripts: a status per request, or a wait first."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.statuses: list[int] = []  # answered in order; 200 once they run out
        self.hold = threading.Event()
        self.hold.set()
        self.arrived = threading.Event()
        self.arrivals = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.arrivals += 1
                receiver.arrived.set()
                receiver.hold.wait(30)
                receiver.bodies.append(body)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _record(i: int = 1, active: bool = True) -> AlertRecord:
    return AlertRecord(id=i, kind="feature_drift", severity="critical", version="v1", message="Dataset drift. Act.",
                       action="Act.", first_seen="2026-01-01T00:00:00Z", last_seen="2026-01-01T00:01:00Z", count=2,
                       active=active)


def test_each_alert_is_posted_as_json(receiver: Receiver) -> None:
    hook = AlertWebhook(receiver.url, home="/h")
    hook([_record(1), _record(2, active=False)])
    assert hook.wait_idle(30)
    assert hook.status.sent == 2 and hook.status.failed == 0
    first, second = receiver.bodies
    assert first["event"] == "alert" and first["alert"]["id"] == 1 and first["alert"]["kind"] == "feature_drift"
    assert first["alert"]["count"] == 2 and second["alert"]["active"] is False
    assert first["server"]["home"] == "/h"
    hook.close()


def test_a_failing_receiver_is_retried_with_backoff_then_given_up(receiver: Receiver, capsys) -> None:
    receiver.statuses = [500, 503, 502, 500]
    hook = AlertWebhook(receiver.url, attempts=4, backoff_s=0.01)
    hook([_record()])
    assert hook.wait_idle(30)
    assert len(receiver.bodies) == 4 and hook.status.sent == 0 and hook.status.failed == 1
    assert hook.status.last_error == "HTTP 500"
    # A receiver that fails once and then answers: the same alert arrives, once.
    receiver.bodies.clear()
    receiver.statuses = [503]
    hook([_record(3)])
    assert hook.wait_idle(30)
    assert [b["alert"]["id"] for b in receiver.bodies] == [3, 3] and hook.status.sent == 1
    # A 4xx other than 429 is the receiver refusing: not retried.
    receiver.bodies.clear()
    receiver.statuses = [404]
    hook([_record(4)])
    assert hook.wait_idle(30)
    assert len(receiver.bodies) == 1 and hook.status.failed == 2
    hook.close()


def test_a_slow_receiver_never_blocks_the_caller_and_a_full_queue_drops(receiver: Receiver) -> None:
    receiver.hold.clear()  # the receiver takes the first request and sits on it
    hook = AlertWebhook(receiver.url, max_queue=2, timeout_s=30)
    hook([_record(1)])
    assert receiver.arrived.wait(30)
    # The sender is stuck in the first POST; more alerts only queue, then drop, and the caller returns.
    hook([_record(2), _record(3), _record(4)])
    assert hook.status.dropped == 1
    receiver.hold.set()
    assert hook.wait_idle(30)
    assert sorted(b["alert"]["id"] for b in receiver.bodies) == [1, 2, 3] and hook.status.sent == 3
    hook.close()


def test_a_receiver_slower_than_the_timeout_is_retried(receiver: Receiver) -> None:
    receiver.hold.clear()
    hook = AlertWebhook(receiver.url, timeout_s=0.2, backoff_s=0.01, attempts=3)
    hook([_record(7)])
    assert receiver.arrived.wait(30)
    # The first attempt times out; let the receiver answer from now on.
    threading.Timer(0.5, receiver.hold.set).start()
    assert hook.wait_idle(30)
    assert receiver.arrivals >= 2  # the timed-out POST was sent again
    assert hook.status.last_error is not None and "timed out" in hook.status.last_error
    hook.close()


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://x/y", "http://", "hook"])
def test_only_http_urls_with_a_host_are_accepted(url: str) -> None:
    with pytest.raises(ValueError):
        check_webhook_url(url)


def test_the_server_posts_the_alerts_its_background_check_raises(receiver: Receiver, make_settings, packages) -> None:
    from model_mcp import samples
    from model_mcp.core.errors import InvalidInputError
    from model_mcp.core.manager import ModelManager
    from model_mcp.core.monitor_check import BackgroundCheck

    manager = ModelManager(make_settings(isolated_probe=False, alert_webhook=receiver.url))
    manager.start()
    manager.import_zip(path=str(packages(version="v1")))
    manager.deploy(version="v1")
    for _ in range(19):
        manager.predict(rows=samples.sample_rows(1))
    for _ in range(3):
        with pytest.raises(InvalidInputError):
            manager.predict(rows=[[1.0]])
    BackgroundCheck(manager, interval_s=3600, drift_min_rows=10_000).run_once()
    assert manager.webhook is not None and manager.webhook.wait_idle(30)
    (body,) = receiver.bodies
    assert body["alert"]["kind"] == "error_rate" and body["alert"]["version"] == "v1" and body["alert"]["active"]
    manager.close()
