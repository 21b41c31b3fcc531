"""A headless Chromium that opens a Neuroglancer URL and returns what it rendered.

The browser is Debian's ``chromium`` driven by its ``chromium-driver`` through Selenium; WebGL goes
through SwiftShader, so no GPU is needed. ``Browser.load`` waits for the same readiness signal that
Neuroglancer's own screenshot handler waits for (``viewer.isReady()``: every visible layer's data
source loaded and every visible chunk of every panel on the GPU, seen twice with pending events
handled in between), then returns the page as an RGB NumPy array with the geometry of the first
cross-section panel. Each screenshot is also kept as a PNG under the artifact directory.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

WINDOW_SIZE = (800, 600)

# SwiftShader is Chromium's CPU WebGL; "unsafe" only means it is not meant for untrusted pages,
# and these tests load nothing but their own 127.0.0.1 servers.
CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-gpu-sandbox",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    f"--window-size={WINDOW_SIZE[0]},{WINDOW_SIZE[1]}",
)

_BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome")
_DRIVER_NAMES = ("chromedriver", "chromium-driver")

# Polls until the viewer has `layers` layers and is ready on two consecutive checks (the second
# after a macrotask, as Neuroglancer's screenshot handler does, so that deferred layer
# registration cannot slip in between), then draws once more so the page shows the loaded chunks.
_WAIT_READY_JS = """
const [layers, timeoutMs, done] = arguments;
const deadline = Date.now() + timeoutMs;
// A client that failed to start never makes window.viewer: give up on it early.
const noViewerDeadline = Date.now() + Math.min(timeoutMs, 10000);
let readyBefore = false;
function describe() {
  const v = window.viewer;
  if (!v) return {ok: false, reason: "window.viewer does not exist"};
  const managed = v.layerManager.managedLayers;
  return {
    ok: false,
    reason: "not ready",
    layers: managed.map(l => ({name: l.name, ready: Boolean(l.isReady())})),
    display_ready: v.display.isReady(),
  };
}
function check() {
  const v = window.viewer;
  let ready = false;
  try {
    ready = Boolean(v) && v.layerManager.managedLayers.length >= layers && v.isReady();
  } catch (e) {
    done({ok: false, reason: "isReady() threw: " + e});
    return;
  }
  if (ready && readyBefore) {
    v.display.draw();
    requestAnimationFrame(() => requestAnimationFrame(() => done({ok: true})));
    return;
  }
  readyBefore = ready;
  if (Date.now() > deadline || (!v && Date.now() > noViewerDeadline)) {
    done(describe());
    return;
  }
  setTimeout(check, ready ? 0 : 25);
}
check();
"""

# Resolves once some visible chunk is in GPU memory: the next frame draws data. Index 0 of a
# source's statistics counts its visible chunks in GPU memory (chunk_manager/base.ts: state
# GPU_MEMORY, tier VISIBLE, statistic numChunks).
_WAIT_FIRST_CHUNK_JS = """
const [timeoutMs, done] = arguments;
const deadline = Date.now() + timeoutMs;
async function check() {
  const v = window.viewer;
  if (v) {
    const stats = await v.chunkQueueManager.getStatistics();
    for (const values of stats.values()) {
      if (values[0] > 0) {
        requestAnimationFrame(() => done({ok: true}));
        return;
      }
    }
  }
  if (Date.now() > deadline) {
    done({ok: false, reason: "no visible chunk reached the GPU"});
    return;
  }
  setTimeout(check, 10);
}
check();
"""

# The first cross-section (xy, xz or yz) panel's rectangle in CSS pixels of the page.
_PANEL_JS = """
const v = window.viewer;
for (const panel of v.display.panels) {
  if (!panel.sliceView || !panel.visible) continue;
  const r = panel.element.getBoundingClientRect();
  return [r.left, r.top, r.width, r.height, window.devicePixelRatio];
}
return null;
"""


class BrowserError(RuntimeError):
    """The browser could not be started, or the page did not become ready in time."""


def artifact_dir() -> Path:
    """Where screenshots are kept: ``$BIGARRAYS_TEST_ARTIFACTS`` or ``tests/artifacts``."""
    configured = os.environ.get("BIGARRAYS_TEST_ARTIFACTS")
    path = Path(configured) if configured else Path(__file__).parent / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _find(names: tuple[str, ...], what: str, package: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserError(
        f"no {what} found on PATH (looked for {', '.join(names)}); "
        f"install Debian's {package} package (.ci/run does)"
    )


@dataclass
class Shot:
    """A screenshot (H x W x 3 uint8, RGB) and the cross-section panel's box in its pixels."""

    image: np.ndarray
    panel: tuple[int, int, int, int]  # left, top, width, height
    path: Path
    state: dict[str, Any]
    #: The page's console errors (failed requests, uncaught exceptions).
    errors: list[str]

    def region(self, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        """The pixels of the panel between fractions (x0, y0) and (x1, y1) of its width and
        height; (0, 0) is the panel's top-left corner."""
        left, top, width, height = self.panel
        return self.image[
            top + round(y0 * height) : top + round(y1 * height),
            left + round(x0 * width) : left + round(x1 * width),
        ]

    def voxels(
        self,
        x: tuple[float, float],
        y: tuple[float, float],
        voxel_size: tuple[float, float] | None = None,
    ) -> np.ndarray:
        """The pixels that show the data between ``x`` and ``y`` (ranges of voxel coordinates
        along the panel's horizontal and vertical axes, voxel edges as in Neuroglancer), placed
        from the viewer's own state: its position, zoom and dimensions. ``voxel_size`` is the
        voxel's size along those axes in the dimensions' unit; by default the dimensions'
        scale (the data's voxels are the global ones)."""
        names, scales = self.display_axes()
        position = self.state["position"]
        index = {name: i for i, name in enumerate(self.state["dimensions"])}
        # crossSectionScale counts canonical voxels per pixel; the canonical voxel is the
        # smallest of the displayed dimensions' scales (Neuroglancer's navigation_state.ts).
        pixel = float(self.state.get("crossSectionScale") or 1.0) * min(scales)
        size = voxel_size or (scales[0], scales[1])
        left, top, width, height = self.panel
        edges = []
        for axis, (lo, hi), origin, extent in ((0, x, left, width), (1, y, top, height)):
            centre = float(position[index[names[axis]]]) * scales[axis]
            a = origin + extent / 2 + (lo * size[axis] - centre) / pixel
            b = origin + extent / 2 + (hi * size[axis] - centre) / pixel
            edges.append((max(round(a), origin), min(round(b), origin + extent)))
        (x0, x1), (y0, y1) = edges
        if x1 <= x0 or y1 <= y0:
            raise AssertionError(f"voxels x={x} y={y} are not in the panel {self.panel}")
        return self.image[y0:y1, x0:x1]

    def display_axes(self) -> tuple[list[str], list[float]]:
        """The names and scales of the displayed dimensions (the panel's horizontal, vertical
        and depth axes), which must share one unit (metres, or none)."""
        dimensions = self.state["dimensions"]
        names = (
            self.state.get("displayDimensions")
            or [name for name in dimensions if not name.endswith("'")][:3]
        )
        units = {dimensions[name][1] for name in names}
        if len(units) != 1:
            raise AssertionError(f"the displayed dimensions {names} mix units {units}")
        return list(names), [float(dimensions[name][0]) for name in names]

    def mean(self, x0: float, y0: float, x1: float, y1: float) -> float:
        """Mean brightness (0-255, over RGB) of a region of the panel."""
        return float(self.region(x0, y0, x1, y1).mean())

    def colour(self, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        """The median RGB colour of a region of the panel."""
        return np.median(self.region(x0, y0, x1, y1).reshape(-1, 3), axis=0)


class Browser:
    """One headless Chromium, reused for many pages."""

    def __init__(self, window_size: tuple[int, int] = WINDOW_SIZE) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = _find(_BROWSER_NAMES, "Chromium", "chromium")
        for flag in CHROME_FLAGS:
            if not flag.startswith("--window-size"):
                options.add_argument(flag)
        options.add_argument(f"--window-size={window_size[0]},{window_size[1]}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(executable_path=_find(_DRIVER_NAMES, "chromedriver", "chromium-driver"))
        self.driver = webdriver.Chrome(options=options, service=service)
        self.driver.set_script_timeout(600)
        # Headless windows keep room for browser chrome that is never drawn; pinning the
        # viewport makes every screenshot exactly window_size.
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {
                "width": window_size[0],
                "height": window_size[1],
                "deviceScaleFactor": 1,
                "mobile": False,
            },
        )

    def close(self) -> None:
        self.driver.quit()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self, url: str) -> None:
        """Navigate to ``url``; a URL that differs only in its fragment still reloads the page,
        so that no chunk cached by the previous page is shown."""
        self.driver.get("about:blank")
        self.console()  # forget the previous page's messages
        self.driver.get(url)

    def wait_ready(self, layers: int = 1, timeout: float = 60.0) -> None:
        """Block until Neuroglancer shows every visible chunk of ``layers`` or more layers."""
        result = self.driver.execute_async_script(_WAIT_READY_JS, layers, int(timeout * 1000))
        if not result.get("ok"):
            raise BrowserError(
                f"Neuroglancer was not ready after {timeout:g} s: {result}; "
                f"console: {self.console()[-10:]}"
            )

    def console(self, level: str | None = None) -> list[str]:
        """The page's console messages since the last call (only ``level``'s, if given)."""
        return [
            entry["message"]
            for entry in self.driver.get_log("browser")
            if level is None or entry["level"] == level
        ]

    def load(self, url: str, name: str, *, layers: int = 1, timeout: float = 60.0) -> Shot:
        """Open ``url``, wait until its data is drawn, and return the screenshot, also saved as
        ``<artifact dir>/<name>.png``."""
        self.open(url)
        self.wait_ready(layers, timeout)
        return self.shot(name)

    def load_html(self, html: str, name: str, *, layers: int = 1, timeout: float = 60.0) -> Shot:
        """Open a page made of ``html``, served from an origin of its own on 127.0.0.1 (as a
        notebook server is), whose first iframe holds Neuroglancer; wait until the frame's
        data is drawn, and return the screenshot."""
        with _PageServer(html.encode()) as page:
            self.driver.get("about:blank")
            self.console()
            self.driver.get(page.url)
            frame = self.driver.find_element("tag name", "iframe")
            rect = self.driver.execute_script(
                "const r = arguments[0].getBoundingClientRect(); return [r.left, r.top];", frame
            )
            self.driver.switch_to.frame(frame)
            try:
                self.wait_ready(layers, timeout)
                return self.shot(name, offset=(round(rect[0]), round(rect[1])))
            finally:
                self.driver.switch_to.default_content()

    def shot(self, name: str, offset: tuple[int, int] = (0, 0)) -> Shot:
        """The page as it is now, with the cross-section panel's box (in the current frame,
        which starts at ``offset`` on the page)."""
        from PIL import Image

        png = self.driver.get_screenshot_as_png()
        path = artifact_dir() / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
        path.write_bytes(png)
        image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        rect = self.driver.execute_script(_PANEL_JS)
        if rect is None:
            raise BrowserError(f"the page at {self.driver.current_url} shows no cross-section")
        left, top, width, height, ratio = rect
        panel = (
            round(left * ratio) + offset[0],
            round(top * ratio) + offset[1],
            round(width * ratio),
            round(height * ratio),
        )
        state = self.driver.execute_script("return window.viewer.state.toJSON();")
        errors = self.console("SEVERE")
        return Shot(image=image, panel=panel, path=path, state=state, errors=errors)

    def time_to_ready(
        self, url: str, layers: int = 1, timeout: float = 60.0, start: float | None = None
    ) -> tuple[float, float]:
        """Seconds from ``start`` (a ``time.perf_counter()``; by default, navigation) to the
        first frame with some data and to the first with every visible chunk drawn."""
        self.driver.get("about:blank")
        self.console()
        if start is None:
            start = time.perf_counter()
        self.driver.get(url)
        result = self.driver.execute_async_script(_WAIT_FIRST_CHUNK_JS, int(timeout * 1000))
        if not result.get("ok"):
            raise BrowserError(f"{result}; console: {self.console()[-10:]}")
        first = time.perf_counter() - start
        self.wait_ready(layers, timeout)
        return first, time.perf_counter() - start


class _PageServer:
    """One HTML page on a free 127.0.0.1 port, until the ``with`` block ends."""

    def __init__(self, body: bytes) -> None:
        import http.server
        import threading

        class Page(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def __enter__(self) -> _PageServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def with_state(url: str, **changes: Any) -> str:
    """``url`` (a Neuroglancer URL whose fragment is ``#!`` and the state's JSON) with some
    top-level state keys replaced."""
    import json
    import urllib.parse

    base, fragment = url.split("#!", 1)
    state = json.loads(urllib.parse.unquote(fragment))
    state.update(changes)
    return f"{base}#!{urllib.parse.quote(json.dumps(state, separators=(',', ':')))}"


class StaticNeuroglancer:
    """Neuroglancer's client and a folder of volumes on one 127.0.0.1 origin, served by the
    standard library's file server: the rendering path with no viewer code of ours in it.

    The client shipped in the ``neuroglancer`` package finds its server from a ``/v/<token>/``
    path, so it is served there; its calls back to a Python server fail and are harmless."""

    def __init__(self, data: Path) -> None:
        import functools
        import http.server
        import tempfile
        import threading

        import neuroglancer

        self._root = Path(tempfile.mkdtemp(prefix="ng-static-"))
        (self._root / "v").mkdir()
        (self._root / "v" / "static").symlink_to(
            Path(neuroglancer.__file__).parent / "static/client"
        )
        (self._root / "data").symlink_to(data)

        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

        handler = functools.partial(Quiet, directory=str(self._root))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, state: dict[str, Any]) -> str:
        """The client's URL showing ``state``; ``{data}`` in a layer source names this server's
        data folder."""
        import json
        import urllib.parse

        text = json.dumps(state, separators=(",", ":")).replace("{data}", f"{self.base}/data")
        return f"{self.base}/v/static/index.html#!{urllib.parse.quote(text)}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        shutil.rmtree(self._root)

    def __enter__(self) -> StaticNeuroglancer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
