"""Neuroglancer for bigarrays: ``ba.view(...)`` serves datasets and in-memory arrays, with the
Neuroglancer client, from this process, and hands back a :class:`Viewer` whose ``url`` opens it.
"""

from __future__ import annotations

from bigarrays.viewer.server import ViewerServer, get_server, stop_servers
from bigarrays.viewer.viewer import Viewer, view

__all__ = ["Viewer", "ViewerServer", "get_server", "stop_servers", "view"]
