"""The alert webhook (MODEL_MCP_ALERT_WEBHOOK): each alert raised, escalated or ended, POSTed as JSON.

What teams wire to their chat or pager. The body is one JSON object: `{"event": "alert", "alert":
{id, kind, severity, version, message, action, first_seen, last_seen, count, active}, "server":
{"host", "pid", "home"}}`.

Never in anyone's way: alerts are put on a bounded queue (a full queue drops the newest, counted
and logged) and a thread sends them one by one with `urllib` (standard library). A failed send
(connection refused, a timeout, a 5xx or 429 answer) is retried with exponential backoff
(`backoff_s`, doubled each time, `attempts` in all); other 4xx answers are not retried. Every
give-up is logged with the reason.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from model_mcp.core.alerts import AlertRecord
from model_mcp.logs import get_logger

log = get_logger(__name__)


def check_webhook_url(url: str) -> str:
    """Only http(s) URLs with a host: urllib would also open file: and ftp: ones."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"MODEL_MCP_ALERT_WEBHOOK must be an http(s) URL with a host, not {url[:80]!r}")
    return url


@dataclass
class WebhookStatus:
    sent: int = 0
    failed: int = 0  # alerts given up after every attempt
    dropped: int = 0  # alerts dropped because the queue was full
    last_error: str | None = None


class AlertWebhook:
    def __init__(self, url: str, *, home: str = "", max_queue: int = 1000, attempts: int = 4,
                 backoff_s: float = 0.5, timeout_s: float = 5.0) -> None:
        self.url = check_webhook_url(url)
        self.home = home
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.status = WebhookStatus()
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._idle = threading.Condition()
        self._in_flight = 0

    # --- the listener (any thread; never blocks) ----------------------------------------------------
    def __call__(self, changed: list[AlertRecord]) -> None:
        for record in changed:
            body = {"event": "alert", "alert": record.model_dump(mode="json"),
                    "server": {"host": socket.gethostname(), "pid": os.getpid(), "home": self.home}}
            try:
                with self._idle:
                    self._queue.put_nowait(body)
                    self._in_flight += 1
            except queue.Full:
                self.status.dropped += 1
                log.warning("alert_webhook_dropped", alert_id=record.id, dropped=self.status.dropped)
                continue
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="alert-webhook", daemon=True)
                self._thread.start()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every queued alert was sent or given up (tests, shutdown)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def close(self, timeout: float = 5.0) -> None:
        self.wait_idle(timeout)
        with self._lock:
            thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout)

    # --- the sender thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                body = self._queue.get(timeout=30)
            except queue.Empty:
                return  # idle: the next alert starts a new thread
            if body is None:
                return
            try:
                self._deliver(body)
            finally:
                with self._idle:
                    self._in_flight -= 1
                    self._idle.notify_all()

    def _deliver(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        delay = self.backoff_s
        for attempt in range(1, self.attempts + 1):
            retry, reason = self._post(data)
            if reason is None:
                self.status.sent += 1
                return
            self.status.last_error = reason
            if not retry or attempt == self.attempts:
                break
            log.info("alert_webhook_retry", attempt=attempt, reason=reason, next_in_s=delay)
            time.sleep(delay)
            delay *= 2
        self.status.failed += 1
        log.error("alert_webhook_failed", alert_id=body["alert"]["id"], attempts=attempt, reason=reason)

    def _post(self, data: bytes) -> tuple[bool, str | None]:
        """(retry?, failure reason or None when delivered)."""
        request = urllib.request.Request(self.url, data=data, method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "User-Agent": "model-mcp-alerts"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:  # noqa: S310 (scheme checked)
                answer.read(65536)
            return False, None
        except urllib.error.HTTPError as exc:
            return exc.code >= 500 or exc.code == 429, f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            return True, str(getattr(exc, "reason", exc))
