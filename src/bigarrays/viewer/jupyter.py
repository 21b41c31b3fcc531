"""Reaching the viewer from a notebook whose browser cannot reach the kernel's ports.

On a cluster node (JupyterHub, a batch job with a tunnel to the notebook server only) the
browser reaches the notebook server and nothing else. When the kernel runs under a Jupyter
server with ``jupyter-server-proxy``, the server forwards ``<base_url>proxy/<port>/<path>`` to
``127.0.0.1:<port>/<path>``: the viewer's URL goes through it, and no tunnel is needed. The
data URLs in the state carry the same prefix; the page rewrites their origin to its own
(:mod:`.client`), which the kernel cannot know.

``BIGARRAYS_VIEWER_PROXY`` overrides the detection: ``0`` (or ``off``) never proxies, a path
such as ``/user/me/`` proxies through the notebook server at that base URL.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

ENV = "BIGARRAYS_VIEWER_PROXY"


@dataclass(frozen=True)
class Route:
    """Where a browser finds the server: ``page`` is the client page's URL (relative behind a
    proxy), ``data`` the absolute root of the data URLs; both end with ``/<token>/``."""

    page: str
    data: str
    proxied: bool = False


def in_kernel() -> bool:
    """Whether this code runs inside a Jupyter (IPython) kernel."""
    if "ipykernel" not in sys.modules:
        return False
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if get is not None else None
    return shell is not None and hasattr(shell, "kernel")


def proxy_installed() -> bool:
    return importlib.util.find_spec("jupyter_server_proxy") is not None


def notebook_server() -> tuple[str, str] | None:
    """(origin, base_url) of the Jupyter server this kernel most likely runs under."""
    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:
        return None
    for info in list_running_servers():
        parts = urlsplit(str(info.get("url", "")))
        origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else "http://localhost"
        return origin, str(info.get("base_url", "/"))
    return None


def route(
    direct: str,
    port: int,
    token: str,
    *,
    env: Mapping[str, str] | None = None,
    kernel: bool | None = None,
    proxy: bool | None = None,
    server: tuple[str, str] | None = None,
) -> Route:
    """The route to the server at ``direct`` (``http://host:port/<token>/``). The keywords
    replace what is detected (the environment, being in a kernel, the proxy package and the
    notebook server's origin and base URL), for tests and callers that know better."""
    env = os.environ if env is None else env
    forced = env.get(ENV, "").strip()
    if forced.lower() in ("0", "off", "no", "false"):
        return Route(direct, direct)
    if not forced:
        if not (in_kernel() if kernel is None else kernel):
            return Route(direct, direct)
        if not (proxy_installed() if proxy is None else proxy):
            return Route(direct, direct)
    origin, base = server or notebook_server() or ("http://localhost", "/")
    base = forced or env.get("JUPYTERHUB_SERVICE_PREFIX") or base
    base = "/" + base.strip("/") + "/" if base.strip("/") else "/"
    path = f"{base}proxy/{port}/{token}/"
    return Route(path, origin + path, proxied=True)
