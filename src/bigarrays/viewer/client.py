"""The Neuroglancer client, served from the files the ``neuroglancer`` package ships.

The package's wheel holds the built client (``neuroglancer/static/client/``: index.html, the
JavaScript bundles, their WebAssembly); serving it from the same origin as the data means no
internet, no CORS and no Node.js. The files are read once and kept in memory: they are a few
megabytes and every page load asks for all of them.

The wheel's client is the one Neuroglancer's Python package drives: it finds its server's
token in a page path ``.../v/<id>/`` and opens an event stream to that server for its settings.
This server has nothing to push, so the script below gives that client a stream that is open
and silent, rather than letting it hold one of the browser's six connections per host for ever
(a notebook of several viewers would stall) or report a lost "Python server".

The script also fixes the data URLs. Neuroglancer needs absolute data URLs, but
the host and path prefix a browser reaches the server by are not always the ones the server
knows: an ``ssh -L`` tunnel with another local port, a server bound to 0.0.0.0, or a notebook
server's proxy (``/user/me/proxy/8123/...``). The script rewrites, in the state of the URL, every
data URL of this server (recognised by its token) to the page's own origin and prefix before
Neuroglancer reads the state, so a URL works however the page was reached.
"""

from __future__ import annotations

import importlib.util
import mimetypes
import threading
from dataclasses import dataclass
from pathlib import Path

from bigarrays.codecs import gzip
from bigarrays.errors import MissingDependencyError

#: Content types of the client's files (the platform's table may lack wasm, or map .js oddly).
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".wasm": "application/wasm",
    ".map": "application/json",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}

_SCRIPT = """<script>(function(){
var token=%r,ES=window.EventSource;
window.EventSource=function(u,o){if(String(u).indexOf("/"+token+"/events/")<0)return new ES(u,o);
var self=this;this.readyState=1;this.url=String(u);this.close=function(){self.readyState=2;};
setTimeout(function(){if(self.onopen)self.onopen({});},0);};
var h=location.hash;if(h.slice(0,2)!=="#!")return;
var p=location.pathname,i=p.indexOf("/"+token+"/");if(i<0)return;
var base=location.origin+p.slice(0,i+token.length+2);
var s;try{s=decodeURIComponent(h.slice(2));}catch(e){return;}
var re=new RegExp("https?://[^/\\"'\\\\s]+(/[^\\"'\\\\s]*?)?/"+token+"/","g");
var t=s.replace(re,base);
if(t!==s)history.replaceState(null,"",p+location.search+"#!"+encodeURIComponent(t));
})();</script>"""

#: The client ships no icon; an empty one keeps browsers from asking the server root for
#: ``/favicon.ico``, a 404 in every log.
_ICON = '<link rel="icon" href="data:,">'


#: Suffixes of the files worth sending gzip-compressed (about 5 MB in all, 1.5 MB compressed):
#: the page is fetched through a notebook server's proxy from far away as often as from here.
_COMPRESSIBLE = (".html", ".js", ".css", ".wasm", ".map", ".json", ".svg")


@dataclass(frozen=True)
class ClientFile:
    body: bytes
    content_type: str
    #: ``body`` gzip-compressed, for clients that take it (None: sent as it is).
    gzipped: bytes | None = None


def client_dir() -> Path:
    """Where the installed ``neuroglancer`` package keeps its built client."""
    # Found, not imported: the package imports tornado and more that serving files needs not.
    spec = importlib.util.find_spec("neuroglancer")
    if spec is None or spec.origin is None:
        raise MissingDependencyError("neuroglancer", "viewer", "the viewer")
    folder = Path(spec.origin).parent / "static" / "client"
    if not (folder / "index.html").is_file():
        raise MissingDependencyError("neuroglancer", "viewer", "the viewer's built client")
    return folder


class Client:
    """The client's files by name, the page rewritten for one server token."""

    def __init__(self, token: str, folder: Path | None = None) -> None:
        self.folder = folder or client_dir()
        self.token = token
        self._files: dict[str, ClientFile] = {}
        self._lock = threading.Lock()
        self._names = {p.name for p in self.folder.iterdir() if p.is_file()}

    def get(self, name: str) -> ClientFile | None:
        """The file ``name`` ("" or "index.html" for the page), or None if the client has none."""
        name = name or "index.html"
        found = self._files.get(name)
        if found is not None:
            return found
        if name not in self._names:
            return None
        body = (self.folder / name).read_bytes()
        if name == "index.html":
            body = self._page(body)
        suffix = Path(name).suffix
        kind = _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
        packed = gzip.compress(body, 1) if suffix in _COMPRESSIBLE else None  # ISA-L: ~80 MB/s
        if packed is not None and len(packed) >= len(body):
            packed = None
        found = ClientFile(body, kind, packed)
        with self._lock:
            self._files[name] = found
        return found

    def _page(self, body: bytes) -> bytes:
        script = (_SCRIPT % self.token + _ICON).encode()
        head = body.find(b"<head>")
        if head < 0:
            return script + body
        at = head + len(b"<head>")
        return body[:at] + script + body[at:]
