"""The HTML report rendered by a real headless Chromium: every environment has its bar."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from keyguard.audit.html import CSP
from tests.audit.conftest import Org

CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")

#: `.ci/run` installs Chromium and sets this, so that CI never skips the browser tests.
REQUIRE_BROWSER = os.environ.get("KEYGUARD_REQUIRE_BROWSER") == "1"

#: Added to a copy of the page only: it measures what the browser laid out and writes it
#: into the DOM, which --dump-dom then prints. The report itself carries no script.
MEASURE = """<script>
const box = e => { const r = e.getBoundingClientRect(); return {x: r.left, w: r.width}; };
const out = {bars: {}, labels: {}, lines: {}, rows: {}};
for (const r of document.querySelectorAll('#age-chart rect.bar')) {
  out.bars[r.dataset.env] = {...box(r), fill: getComputedStyle(r).fill};
}
for (const t of document.querySelectorAll('#age-chart text.label')) {
  out.labels[t.textContent] = t.getComputedTextLength();
}
for (const l of document.querySelectorAll('#age-chart line.due, #age-chart line.max')) {
  if (l.dataset.env) {
    (out.rows[l.dataset.env] = out.rows[l.dataset.env] || {})[l.classList[0]] = box(l).x;
  } else {
    out.lines[l.classList[0]] = box(l).x;
  }
}
const pre = document.createElement('pre');
pre.id = 'measured';
pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>"""


def render_in_chromium(page: str, tmp_path: Path) -> dict[str, dict[str, object]]:
    if not CHROMIUM.exists():
        message = "no Chromium here: apt-get install -y chromium"
        if REQUIRE_BROWSER:
            pytest.fail(f"KEYGUARD_REQUIRE_BROWSER=1 but {message}")
        pytest.skip(message)
    instrumented = page.replace(CSP, CSP + "; script-src 'unsafe-inline'").replace(
        "</body>", MEASURE + "</body>"
    )
    path = tmp_path / "report.html"
    path.write_text(instrumented)
    proc = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1200,900",
            "--dump-dom",
            path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.search(r'<pre id="measured">(.*?)</pre>', proc.stdout, re.S)
    assert found, proc.stdout[-2000:]
    measured: dict[str, dict[str, object]] = json.loads(found.group(1).replace("&amp;", "&"))
    return measured


def test_chart_bars_render_against_the_policy_lines(org: Org, tmp_path: Path) -> None:
    org.env("dev", org.key("dev-1", age_days=5))
    org.env("staging", org.key("staging-1", age_days=84))
    org.env("prod", org.key("prod-1", age_days=120))
    org.env("edge", org.key("edge-1", age_days=40))
    target = tmp_path / "audit.html"
    code, _, err = org.cli("--format", "html", "--output", str(target))
    assert code == 1, err

    m = render_in_chromium(target.read_text(), tmp_path)
    bars, lines, labels = m["bars"], m["lines"], m["labels"]
    assert set(bars) == {"dev", "staging", "prod", "edge"}
    assert set(labels) == {"dev", "staging", "prod", "edge"}
    assert all(float(w) > 0 for w in labels.values())  # the names were drawn in a font
    width = {env: float(b["w"]) for env, b in bars.items()}  # type: ignore[index]
    assert 0 < width["dev"] < width["edge"] < width["staging"] < width["prod"]
    end = {env: float(b["x"]) + width[env] for env, b in bars.items()}  # type: ignore[index]
    due, max_ = float(lines["due"]), float(lines["max"])  # type: ignore[arg-type]
    assert end["edge"] < due < end["staging"] < max_ < end["prod"]
    fills = {env: b["fill"] for env, b in bars.items()}  # type: ignore[index]
    assert fills["dev"] == fills["edge"]
    assert len({fills["dev"], fills["staging"], fills["prod"]}) == 3  # ok, due, violation


def test_each_environment_gets_its_own_policy_marks(org: Org, tmp_path: Path) -> None:
    org.env("prod", org.key("prod-1", age_days=28), policy={"due_after": "25d", "max_age": "30d"})
    org.env("dev", org.key("dev-1", age_days=28))
    target = tmp_path / "audit.html"
    code, _, err = org.cli("--format", "html", "--output", str(target), "--fail-on", "never")
    assert code == 0, err

    m = render_in_chromium(target.read_text(), tmp_path)
    bars, rows = m["bars"], m["rows"]
    assert m["lines"] == {}  # no one-size line across the chart when the policies differ
    assert set(rows) == {"prod", "dev"}
    prod, dev = rows["prod"], rows["dev"]
    end = float(bars["prod"]["x"]) + float(bars["prod"]["w"])  # type: ignore[index]
    assert float(prod["due"]) < end < float(prod["max"])  # type: ignore[arg-type,index]
    assert end < float(dev["due"]) < float(dev["max"])  # type: ignore[arg-type,index]
    assert bars["prod"]["fill"] != bars["dev"]["fill"]  # type: ignore[index]
