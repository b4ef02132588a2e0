"""matrix.html in headless Chromium: a screenshot, and the layout as the browser measures it (horizontal
overflow, row heights, whether every row fits the window)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from katatest.errors import KatatestError

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars")
TIMEOUT_S = 120.0
MEASURE = """<script>
window.addEventListener("load", function () {
  var rows = Array.from(document.querySelectorAll("#matrix tbody tr"));
  var heights = rows.map(function (r) { return r.getBoundingClientRect().height; });
  var last = rows.length ? rows[rows.length - 1].getBoundingClientRect().bottom : 0;
  var out = document.createElement("pre");
  out.id = "katatest-layout";
  out.textContent = JSON.stringify({scroll_width: document.documentElement.scrollWidth,
    client_width: document.documentElement.clientWidth, rows: rows.length,
    max_row_height: Math.max.apply(null, heights.concat([0])), last_row_bottom: last});
  document.body.appendChild(out);
});
</script>"""


class BrowserError(KatatestError):
    """Chromium is missing or did not render the page."""


@dataclass(frozen=True)
class Layout:
    """What the browser measured at one window size."""

    width: int
    height: int
    scroll_width: int
    client_width: int
    rows: int
    max_row_height: float
    last_row_bottom: float

    @property
    def scrolls_horizontally(self) -> bool:
        return self.scroll_width > self.client_width

    @property
    def every_row_on_screen(self) -> bool:
        return self.last_row_bottom <= self.height


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise BrowserError("chromium is not installed (scripts/setup.sh installs it)")
    return found


def run_chromium(*args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="katatest-chromium-") as profile:
        try:
            return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                                  text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise BrowserError(f"chromium did not finish within {TIMEOUT_S:.0f} s") from None


def screenshot(page: Path, out: Path, width: int = 1600, height: int = 1000) -> Path:
    """A PNG of the page's first ``width`` x ``height`` pixels."""
    run = run_chromium(f"--screenshot={out}", f"--window-size={width},{height}", Path(page).resolve().as_uri())
    if not Path(out).is_file():
        raise BrowserError(f"chromium wrote no screenshot of {page}: {run.stderr.strip()[-300:]}")
    return Path(out)


def measure(page: Path, width: int = 1600, height: int = 1000) -> Layout:
    """The page's layout at ``width`` x ``height`` (a copy with a measuring script, so the page stays as is)."""
    text = Path(page).read_text()
    copy = Path(page).with_name(f".{Path(page).stem}-measure.html")
    copy.write_text(text.replace("</body>", MEASURE + "</body>", 1))
    try:
        run = run_chromium("--dump-dom", "--virtual-time-budget=2000", f"--window-size={width},{height}",
                   copy.resolve().as_uri())
    finally:
        copy.unlink(missing_ok=True)
    found = re.search(r'<pre id="katatest-layout">(.*?)</pre>', run.stdout, re.S)
    if not found:
        raise BrowserError(f"chromium did not measure {page}: {run.stderr.strip()[-300:]}")
    return Layout(width, height, **json.loads(found.group(1)))
