"""`snakemake --report`: one self-contained HTML file whose figures really render in a browser.

The report is a JavaScript (React) application: its results only appear after the scripts
ran. The test runs the real workflow on the small synthetic project, builds the report, and
opens it in headless Chromium with name resolution switched off (so anything not embedded
could not load). A small probe script, appended to a copy of the report, clicks through the
report's own menus like a reader would: for each result it opens the category, presses the
row's "view" button, waits for the image to decode and measures its pixels, opens the
"info" button and reads the caption. `--dump-dom` returns the probe's findings; a screenshot
of the final view (the exclusion plot with its caption) is checked for content as well.

Chromium comes from Debian (`tests/report/install-chromium.sh`); without it the browser
part is skipped with that reason.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import copy_workflow

BIN = Path(sys.executable).parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.slow


def snakemake(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", OMP_NUM_THREADS="1")
    return subprocess.run([str(BIN / "snakemake"), "--cores", "2", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=600)


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium, offline: no background traffic and every host name unresolvable.

    On a loaded machine headless Chromium now and then never exits (seen once in a full-suite run: the same
    call took 13 s alone); it gets one more try with a fresh profile, and a second hang fails the test.
    """
    for attempt in (0, 1):
        cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={profile}-{attempt}", "--hide-scrollbars",
               "--window-size=1400,1000", "--virtual-time-budget=20000", *args]  # fmt: skip
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        except subprocess.TimeoutExpired:
            if attempt:
                raise
    raise AssertionError("unreachable")


# The probe. Each target is [category, cells of the result's row...]; the view and info
# buttons are the two links in the row's last cell. The last target stays on screen for
# the screenshot.
PROBE = r"""
<script>
window.addEventListener("load", async function () {
  const out = {targets: [], error: null, menu: []};
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  async function waitFor(fn, what) {
    for (let i = 0; i < 200; i++) {
      const value = fn();
      if (value) return value;
      await sleep(50);
    }
    throw new Error("timed out waiting for " + what);
  }
  const links = () => [...document.querySelectorAll("#app a")];
  const text = (el) => el.textContent.trim();
  function row(cells) {
    return [...document.querySelectorAll("#app nav tr")].find(function (tr) {
      const tds = [...tr.querySelectorAll("td")].map(text);
      return cells.every((c, i) => tds[i] === c);
    });
  }
  async function pixels(img) {
    // (img.decode() is not used: its promise does not hold virtual time, drawImage decodes)
    await waitFor(() => img.complete && img.naturalWidth > 0, "the image to load");
    const canvas = document.createElement("canvas");
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0);
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let inked = 0, n = 0;
    const colours = new Set();
    for (let i = 0; i < data.length; i += 4 * 5) {
      n++;
      if (data[i] < 240 || data[i + 1] < 240 || data[i + 2] < 240) inked++;
      colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
    }
    return {width: img.naturalWidth, height: img.naturalHeight, inked: inked / n, colours: colours.size};
  }
  try {
    await waitFor(() => links().some((a) => text(a) === "Workflow"), "the report menu");
    out.menu = links().map(text).filter((t) => t);
    out.description = document.querySelector("#app .prose") ? document.querySelector("#app .prose").innerText : "";
    for (const [category, ...cells] of TARGETS) {
      const found = {category: category, cells: cells};
      out.targets.push(found);
      // home (first breadcrumb), then the category in the menu
      document.querySelector("#app nav nav ol li a").click();
      const item = await waitFor(function () {
        const crumbs = document.querySelectorAll("#app nav nav ol > li");  // home and search only
        const menu = [...document.querySelectorAll("#app nav ul > li > a")];
        return crumbs.length === 2 && menu.find((a) => text(a) === category);
      }, "menu item " + category);
      item.click();
      const tr = await waitFor(() => row(cells), "row " + cells.join(" | "));
      const [view, info] = tr.querySelectorAll("td:last-child a");
      if (view.getAttribute("download") !== null) {
        // not an image: the view button is a download link carrying the file as a data URI
        found.download = view.getAttribute("download");
        const href = view.getAttribute("href");
        found.content = new TextDecoder().decode(Uint8Array.from(atob(href.split(",")[1]), (c) => c.charCodeAt(0)));
      } else {
        // an image is shown in an <img>, an HTML page in an <iframe>, both from data URIs
        // (outside the menu, which has the Snakemake logo as a data URI image)
        const shown = () => [...document.querySelectorAll("#app img, #app iframe")].find(
          (el) => !el.closest("nav") && (el.getAttribute("src") || "").startsWith("data:"));
        const before = shown();
        view.click();
        const el = await waitFor(() => shown() !== before && shown(), "the view of " + cells.join(" | "));
        found.shown = el.tagName.toLowerCase();
        if (found.shown === "img") {
          found.image = await pixels(el);
        } else {
          const src = el.getAttribute("src");
          found.content = new TextDecoder().decode(Uint8Array.from(atob(src.split(",")[1]), (c) => c.charCodeAt(0)));
        }
      }
      info.click();
      const caption = await waitFor(() => document.querySelector("#app nav li.prose"), "the caption");
      found.caption = caption.innerText;
    }
  } catch (err) {
    out.error = String(err && err.stack || err);
    const nav = document.querySelector("#app nav");
    out.navbar = nav ? nav.innerText : "";
    out.state = JSON.stringify(app.state, (k, v) => typeof v === "string" ? v.slice(0, 80) : v);
  }
  const pre = document.createElement("pre");
  pre.id = "probe-result";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def with_probe(report: Path, dest: Path, targets: list[list[str]]) -> Path:
    text = report.read_text(encoding="utf-8")
    cut = text.rfind("</body>")
    assert cut > 0, "the report has no </body>"
    probe = PROBE.replace("TARGETS", json.dumps(targets))
    dest.write_text(text[:cut] + probe + text[cut:], encoding="utf-8")
    return dest


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_snakemake_report_renders_in_a_browser(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    copy_workflow(project)
    cfg = yaml.safe_load((project / "config" / "config.yaml").read_text())
    cfg["fit_plots"] = ["TOYGRID/P2"]
    (project / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    analysis = project / "config" / "analyses" / "TOY" / "analysis.yaml"
    doc = yaml.safe_load(analysis.read_text())  # a reference that passes, so the check rule runs
    doc["references"] = [{"grid": "TOYGRID", "point": "P1", "quantity": "cls_obs", "value": 0.5, "rtol": 10.0,
                          "source": "test"}]
    analysis.write_text(yaml.safe_dump(doc, sort_keys=False))

    run = snakemake(project)
    assert run.returncode == 0, run.stderr[-3000:]
    rep = snakemake(project, "--report", "report.html")
    assert rep.returncode == 0, rep.stderr[-3000:]

    # --- one self-contained file ---------------------------------------------------------
    report = project / "report.html"
    text = report.read_text(encoding="utf-8")
    external = re.findall(r"<(?:script|link|img|iframe|source)\b[^>]*\s(?:src|href)=[\"'](?!data:)[^\"']*", text)
    assert external == [], f"the report loads files from outside: {external[:3]}"
    results = json.loads(re.search(r"var results = (\{.*?\});\n", text, re.S).group(1))
    by_file = {Path(p).as_posix(): r for p, r in results.items()}
    expected = {
        "results/limits/TOYGRID/exclusion.png": "image/png",
        "results/limits/TOYGRID/limits.csv": "text/csv",
        "results/check/TOY.txt": "text/plain",
        "results/limits/TOYGRID/batches/b000.json": "application/json",
        "results/limits/TOYGRID/fitplots/P2/TOYGRID-P2_pulls.png": "image/png",
        "results/report/index.html": "text/html",
    }
    for path, mime in expected.items():
        assert path in by_file, f"{path} is not in the report (has: {sorted(by_file)})"
        assert by_file[path]["mime_type"] == mime
        assert by_file[path]["data_uri"].startswith(f"data:{mime}"), "results must be embedded, not linked"
        assert by_file[path]["caption"], f"{path} has no caption"
    png = base64.b64decode(by_file["results/limits/TOYGRID/exclusion.png"]["data_uri"].split(",", 1)[1])
    assert png == (project / "results/limits/TOYGRID/exclusion.png").read_bytes()
    width, height = png_size(png)
    assert width > 500 and height > 300
    # captions: rst rendered, wildcards filled in
    assert "Red crosses" in by_file["results/limits/TOYGRID/exclusion.png"]["caption"]
    assert "TOYGRID" in by_file["results/limits/TOYGRID/exclusion.png"]["caption"]
    assert "{{" not in text.split("var results", 1)[1].split("var rulegraph_spec", 1)[0]
    fitplots = [p for p in by_file if "/fitplots/P2/" in p]
    assert len(fitplots) >= 3 and all(p.endswith(".png") for p in fitplots)
    assert by_file["results/limits/TOYGRID/fitplots/P2/TOYGRID-P2_pulls.png"]["labels"] == {
        "point": "P2", "file": "pulls"}
    # the workflow description (Snakefile `report:` directive), rendered with this run's config
    desc = json.loads(re.search(r"var workflow_desc = (\".*?\");\n", text, re.S).group(1))
    assert "What this run computed" in desc, \
        'no workflow description: the Snakefile needs the line  report: "workflow/report/workflow.rst"'
    assert "TOYGRID/P1" in desc and "TOYGRID/P2" in desc

    # --- in a browser ----------------------------------------------------------------------
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (tests/report/install-chromium.sh installs it): "
                    "browser rendering not checked")
    tmp = tmp_path_factory.mktemp("chromium")
    targets = [
        ["Regression checks", "check table"],
        ["Fit diagnostics", "batch b000", "fit records (JSON)"],
        ["Fit diagnostics", "P2", "pulls"],
        ["recastflow report", "HTML page"],
        ["Exclusion", "limit table (CSV)"],
        ["Exclusion", "exclusion plot"],
    ]
    probed = with_probe(report, tmp / "probed.html", targets)
    dom = chromium(tmp / "profile-dom", "--dump-dom", probed.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'<pre id="probe-result">(.*?)</pre>', dom.stdout, re.S)
    assert found, "the probe did not finish: " + dom.stdout[-500:] + dom.stderr[-2000:]
    probe = json.loads(html.unescape(found.group(1)))
    assert probe["error"] is None, f"{probe['error']}\nthe report's menu showed:\n{probe.get('navbar')}"
    for name in ("Workflow", "Statistics", "Exclusion", "Fit diagnostics", "Regression checks"):
        assert name in probe["menu"]
    assert "What this run computed" in probe["description"] and "TOYGRID" in probe["description"]
    got = {tuple([t["category"], *t["cells"]]): t for t in probe["targets"]}
    assert len(got) == len(targets)

    check = got[("Regression checks", "check table")]
    assert "1 of 1 values within tolerance" in check["content"] and check["download"] == "TOY.txt"
    assert "rel.dev" in check["caption"] and "TOY" in check["caption"]
    record = got[("Fit diagnostics", "batch b000", "fit records (JSON)")]
    fits = json.loads(record["content"])["points"][1]["fits"]
    assert fits and {"converged", "iterations", "at_bounds"} <= set(fits[0])
    assert "at_bounds" in record["caption"] and "b000" in record["caption"]
    csv = got[("Exclusion", "limit table (CSV)")]
    assert csv["content"].startswith("point,m1,m2,status,method,cls_obs") and "flagged" in csv["caption"]
    assert "recastflow" in got[("recastflow report", "HTML page")]["caption"]

    for key, size in ((("Exclusion", "exclusion plot"), (width, height)), (("Fit diagnostics", "P2", "pulls"), None)):
        image = got[key]["image"]
        if size:
            assert (image["width"], image["height"]) == size
        # a real plot: a white page with lines, text and colour, not an empty or broken image
        assert 0.02 < image["inked"] < 0.9 and image["colours"] > 20, image
    exclusion = got[("Exclusion", "exclusion plot")]["caption"]
    assert "Red crosses" in exclusion and "TOYGRID" in exclusion and "CLs < 0.05" in exclusion
    assert "pulls" in got[("Fit diagnostics", "P2", "pulls")]["caption"]

    # --- what a reader sees: the exclusion plot with its caption ---------------------------
    shot = tmp / "exclusion.png"
    snap = chromium(tmp / "profile-shot", f"--screenshot={shot}", probed.as_uri())
    assert snap.returncode == 0 and shot.exists(), snap.stderr[-2000:]
    from PIL import Image  # matplotlib's dependency

    with Image.open(shot) as im:
        rgb = im.convert("RGB")
        assert rgb.size == (1400, 1000)
        # the content area right of the menu holds the plot: many colours, not a blank page
        plot_area = rgb.crop((rgb.size[0] // 3, 0, rgb.size[0], rgb.size[1]))
        colours = plot_area.getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 50, "the plot area of the screenshot is blank"
        dark = sum(n for n, rgb in colours if min(rgb) < 200) / (plot_area.size[0] * plot_area.size[1])
        assert dark > 0.005, f"hardly anything drawn in the plot area of the screenshot ({dark:.2%})"
