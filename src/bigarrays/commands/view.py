"""``bigarrays view``: serve datasets to Neuroglancer from this machine until Ctrl-C."""

from __future__ import annotations

import argparse
import getpass
import os
import threading
from typing import Any

from bigarrays.api import open
from bigarrays.cli import _store_options


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    from bigarrays.viewer.state import LAYOUTS

    p = sub.add_parser(
        "view", help="show datasets in Neuroglancer, served from this machine",
        description="Serve the datasets at URL ... (any format and store) and the Neuroglancer "
        "client over HTTP, print the viewer's URL, and serve until Ctrl-C. On a remote machine "
        "(over SSH) it also prints the ssh -L command that reaches the server.",
        parents=parents,
    )  # fmt: skip
    p.add_argument("urls", metavar="URL", nargs="+", help="dataset URLs or paths")
    p.add_argument("--port", type=int, default=None, help="port to listen on (default: a free one)")
    p.add_argument("--bind", default="127.0.0.1", metavar="ADDR",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 "
                   "lets other machines in, with the URL's token as the only key)")  # fmt: skip
    p.add_argument("--layout", default=None, choices=LAYOUTS,
                   help="Neuroglancer layout (default 4panel, xy for a single slice)")  # fmt: skip
    p.set_defaults(func=run)


def tunnel_hint(port: int, bind: str, env: dict[str, str] | os._Environ[str]) -> str | None:
    """The ``ssh -L`` command that forwards ``port`` from the user's machine to this one, when
    this process runs in an SSH session and listens on loopback only; else None."""
    connection = env.get("SSH_CONNECTION", "").split()
    if bind not in ("127.0.0.1", "localhost") or len(connection) != 4:
        return None
    host, ssh_port = connection[2], connection[3]
    option = "" if ssh_port == "22" else f" -p {ssh_port}"
    return f"ssh -L {port}:127.0.0.1:{port}{option} {getpass.getuser()}@{host}"


def run(args: argparse.Namespace) -> int:
    from bigarrays.viewer import stop_servers, view

    vols = []
    # Ctrl-C is how the command ends, wherever it comes: it stops the server, and no traceback.
    try:
        for url in args.urls:
            vols.append(open(url, **_store_options(args, url)))
        viewer = view(*vols, port=args.port, bind=args.bind, layout=args.layout)
        print(viewer.url, flush=True)
        hint = tunnel_hint(viewer.server.port, args.bind, os.environ)
        if hint is not None:
            print(f"from your machine, first run: {hint}", flush=True)
        print("serving; press Ctrl-C to stop", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        stop_servers()
        for vol in vols:
            vol.close()
    return 0
