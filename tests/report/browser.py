"""Open a report in headless Chromium (Debian's package) and say what it rendered."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# After load, the page writes each image's state into the DOM that Chromium dumps.
PROBE = """<script>
addEventListener("load", () => {
  document.body.dataset.images = [...document.images]
    .map((i) => (i.complete && i.naturalWidth > 0 ? "1" : "0")).join("");
});
</script>"""


@dataclass
class Rendered:
    title: str
    images: str  # "1" per image that loaded, "0" per broken one, in page order
    screenshot: Path


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Chromium is missing: `make test` installs Debian's chromium package"
    return found


def render(report: Path) -> Rendered:
    """Load ``report`` (beside its images) in headless Chromium; a screenshot lands next to it."""
    probe = report.with_name(report.stem + ".probe.html")
    probe.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    screenshot = report.with_name(report.stem + ".png")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000"]
    try:
        dom = subprocess.run(
            [chromium(), *flags, "--dump-dom", f"file://{probe}"],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        subprocess.run(
            [chromium(), *flags, f"--screenshot={screenshot}", "--window-size=1280,2400", f"file://{report}"],
            capture_output=True,
            timeout=120,
        )
    finally:
        probe.unlink()
    title = re.search(r"<title>(.*?)</title>", dom)
    images = re.search(r'data-images="([01]*)"', dom)
    return Rendered(title and title.group(1) or "", images.group(1) if images else "", screenshot)
