"""The dashboard: one HTML page, served as an MCP App (`ui://model-mcp/dashboard`) and at `/` over HTTP.

The page is assembled once from the files beside this module: `dashboard.html` (the skeleton),
`dashboard.css`, `dashboard.js` (the views and both transport adapters) and the vendored uPlot
(`vendor/`, with its license). Everything is inlined, so the page fetches nothing but the server's
own `/mcp` (browser) or talks only to its host through `postMessage` (MCP App).

The two servings differ by one attribute, `data-transport` on `<html>` ("mcp-app" or "http"),
which picks the adapter; the views are the same code. The HTTP page is served with a
Content-Security-Policy that allows exactly the inline scripts and styles of this page, by hash
(`content_security_policy`).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Literal

DASHBOARD_URI = "ui://model-mcp/dashboard"
UPLOT_VERSION = "1.6.32"
Transport = Literal["mcp-app", "http"]

_SLOTS = ("/*STYLE*/", "/*UPLOT_JS*/", "/*APP_JS*/")
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)
_INLINE_STYLE = re.compile(r"<style>(.*?)</style>", re.S)


@dataclass(frozen=True)
class Page:
    html: str
    script_hashes: tuple[str, ...]
    style_hashes: tuple[str, ...]


def _read(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


@functools.cache
def dashboard_page(transport: Transport) -> Page:
    """The assembled page for one transport, with the CSP hashes of its inline scripts and styles."""
    skeleton = _read("dashboard.html")
    style = _read("vendor/uPlot.min.css") + "\n" + _read("dashboard.css")
    uplot_js = _read("vendor/uPlot.iife.min.js")
    app_js = _read("dashboard.js")
    for part in (style, uplot_js, app_js):
        # An inline block must not close its own element early; the vendored file is checked too.
        if "</script" in part.lower() or "</style" in part.lower():
            raise ValueError("an inlined asset contains a closing tag")
    for slot in _SLOTS:
        if skeleton.count(slot) != 1:
            raise ValueError(f"dashboard.html must hold {slot} exactly once")
    html = (skeleton.replace("/*STYLE*/", style)
            .replace("/*UPLOT_JS*/", uplot_js)
            .replace("/*APP_JS*/", app_js)
            .replace('data-transport="http"', f'data-transport="{transport}"'))
    # The hashes cover each inline element's exact text, as the browser sees it.
    return Page(html=html, script_hashes=tuple(_sha256(m) for m in _INLINE_SCRIPT.findall(html)),
                style_hashes=tuple(_sha256(m) for m in _INLINE_STYLE.findall(html)))


def content_security_policy(page: Page) -> str:
    """Only this page's own inline code runs; it may talk to its own origin and nothing else."""
    scripts = " ".join(f"'{h}'" for h in page.script_hashes)
    styles = " ".join(f"'{h}'" for h in page.style_hashes)
    return "; ".join([
        "default-src 'none'",
        f"script-src {scripts}",
        f"style-src {styles}",
        "img-src data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ])
