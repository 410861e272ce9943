"""The HTML leaderboard opens in a real browser: headless Chromium loads it, without network,
with every embedded image decoded and no page errors.

Skipped when Chromium is not installed, unless ``PENCILBENCH_REQUIRE_CHROMIUM=1`` (set by the
``report-html`` tox env), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from pencilbench.reports.build import build_report
from PIL import Image
from test_reports import make_run, standard_outcomes, suite

# Put first in the <head> of a copy of the page: once everything has loaded, it records on <body>
# how many images decoded and every error the page raised (resource errors arrive in the
# capture phase).
PROBE = """
<script>
const problems = [];
window.addEventListener("error", (event) => {
  const what = event.message || "failed to load " + (event.target.src || event.target.tagName);
  problems.push(what.slice(0, 80));
}, true);
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const decoded = images.filter((image) => image.complete && image.naturalWidth > 0).length;
  document.body.setAttribute("data-probe", `images ${decoded}/${images.length} errors ${problems.length}`);
  document.body.setAttribute("data-problems", problems.join(" | "));
});
</script>
"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("PENCILBENCH_REQUIRE_CHROMIUM") == "1":
        pytest.fail("Chromium is required here (PENCILBENCH_REQUIRE_CHROMIUM=1) but not installed")
    pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")


def browse(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-extensions",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def browser() -> str:
    return chromium()


@pytest.fixture(scope="module")
def page(browser: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of a small run (built only when there is a browser to open it)."""
    records = suite()
    run = make_run(tmp_path_factory.mktemp("run"), records, standard_outcomes(records))
    out = tmp_path_factory.mktemp("report")
    return build_report([run], out, [("weak:pencil", "oracle:pencil")]).html


def test_page_loads_with_every_image_and_no_errors(browser: str, page: Path, tmp_path: Path) -> None:
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text().replace("<head>", "<head>" + PROBE, 1))
    result = browse(browser, tmp_path / "profile", "--dump-dom", probed.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    images = page.read_text().count("<img ")
    marker = re.search(r'data-probe="([^"]*)"', result.stdout)
    assert marker is not None, f"the page never finished loading:\n{result.stdout[:500]}\n{result.stderr[-1000:]}"
    problems = re.search(r'data-problems="([^"]*)"', result.stdout)
    assert marker.group(1) == f"images {images}/{images} errors 0", problems.group(1) if problems else ""
    assert "<h1" in result.stdout and "weak:pencil" in result.stdout


def test_screenshot_shows_the_rendered_page(browser: str, page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "page.png"
    result = browse(browser, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,2400", page.as_uri())
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("L"))
    assert pixels.shape == (2400, 1200)
    # the leaderboard table and the headline plot put plenty of ink on the white page
    assert (pixels < 128).mean() > 0.01 and pixels.std() > 20
