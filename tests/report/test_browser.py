"""report.html in a real browser: headless Debian Chromium driven by Playwright.

Checks: no console errors, every image loaded, the outcome table visible with
the numbers of results.json (rounded here, independently of the report's own
formatting code), and a full-page screenshot kept under the test's tmp dir.
Under CI=true a missing Chromium fails the test (``.ci/run`` installs it);
elsewhere it skips, saying why.
"""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import chromium

ROOT = Path(__file__).resolve().parent.parent.parent
SPEC = ROOT / "examples" / "pvp-cancer-vcf" / "study.toml"
DIGITS = {"eq5d3l": 2, "eq5d5l": 2, "odi": 1, "eqvas": 1, "nrs_back": 1, "nrs_leg": 1}




def rounded(x: float, digits: int) -> str:
    d = Decimal(repr(x)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return f"{abs(d):.{digits}f}"          # sign compared separately: the report may print U+2212


def p_text(p: float) -> str:
    return "< 0.001" if p < 0.001 else rounded(p, 3)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    from spinereg.data._synth import synthesize
    from spinereg.report import render_report
    from spinereg.study import load_spec, run_study

    out = tmp_path_factory.mktemp("browser")
    spec, digest = load_spec(SPEC)
    run_study(spec, synthesize(20000, seed=2018), spec_sha256=digest).write(out)
    render_report(out / "results.json", out, formats=("html",))
    return out / "report.html", json.loads((out / "results.json").read_text())


def test_report_in_headless_chromium(report: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    exe = chromium()
    from playwright.sync_api import sync_playwright

    html, results = report
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(html.as_uri(), wait_until="load")
            # self-contained: no request but the file itself (figures are inline or data: URIs)
            assert [u for u in requests if not u.startswith("data:")] == [html.as_uri()]
            shot = tmp_path / "report-full-page.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000

            # every image loaded (raster <img>), and the figures are there (inline SVG or <img>)
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => ({src: e.src.slice(0, 40), ok: e.complete && e.naturalWidth > 0}))")
            assert all(i["ok"] for i in images), images
            n_figures = page.eval_on_selector_all("figure", "els => els.length")
            assert n_figures >= 5
            assert page.eval_on_selector_all("figure", "els => els.filter(f => !f.querySelector('img, svg'))"
                                             ".length") == 0

            # the outcome table: visible, with change, CI and p of every outcome and follow-up
            outcomes = {o["name"]: o for o in results["outcomes"]}
            tables = page.locator("table")
            texts = [tables.nth(i).inner_text() for i in range(tables.count())]
            for r in results["tables"]["paired_change"]:
                if r["n_pairs"] < 2:
                    continue
                d = DIGITS[outcomes[r["outcome"]]["instrument"]]
                want = [rounded(r["mean_diff"], d), rounded(r["ci_low"], d), rounded(r["ci_high"], d),
                        p_text(r["p_value"]), p_text(r["wilcoxon_p_value"])]
                hits = [i for i, t in enumerate(texts) if all(w in t for w in want)]
                assert hits, (r["outcome"], r["timepoint"], want)
                assert tables.nth(hits[0]).is_visible()
            # the synthetic banner is shown
            assert page.get_by_text(re.compile("synthetic", re.I)).first.is_visible()
            # readable on a phone: no horizontal page overflow at 390 px (tables scroll inside)
            page.set_viewport_size({"width": 390, "height": 844})
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1
            page.screenshot(path=str(tmp_path / "report-phone.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []
