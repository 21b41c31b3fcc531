"""Helpers of the viewer's tests: plain HTTP requests to the viewer's server."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import unquote


def fetch(
    url: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one request; HTTP errors are answers, not exceptions."""
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def state_of(url: str) -> dict[str, Any]:
    """The Neuroglancer state a viewer URL carries."""
    found: dict[str, Any] = json.loads(unquote(url.split("#!", 1)[1]))
    return found
