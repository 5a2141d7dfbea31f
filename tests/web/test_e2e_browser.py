"""The web registry end to end in a real browser: Playwright driving Debian's Chromium against a live server.

The walk (issue 12), as far as the installation's pages go:

1. an admin logs in, sets up the authenticator (TOTP, its code computed here by RFC 6238), and creates a
   surgeon through the user pages; the surgeon logs in and sees their site's patients.
2. the surgeon registers a patient by CPR number and an operation with two levels, and locks (e-signs) it;
3. a reviewer records a leak at one level;
4. a data manager corrects a locked value, giving a reason;
5. the auditor sees each change;
6. an analyst runs the seed study spec (bundled ``pvp-cancer-vcf``) on the registry and downloads the
   HTML report.

On every form page the walk meets: no horizontal overflow at 390 px width, every input, select and
textarea has a label (``label[for]``, a wrapping label, ``aria-label`` or ``aria-labelledby``) and is
reached by the Tab key.  The steps fill fields by their label text (``get_by_label``), so a missing
label breaks the walk too.  Screenshots go to the test's tmp_path; console errors (CSP violations
included) fail the test.  Under CI=true a missing Chromium fails; elsewhere it skips, saying why.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spinereg.data import contains_cpr
from tests.conftest import chromium
from tests.web._support import Seeded, run_python, seeded_sqlite, totp, web_env
from tests.web.conftest import PASSWORD, Server, start_server, stop_server

PHONE = {"width": 390, "height": 844}
NEW_PASSWORD = "another-long-passphrase-for-e2e"
SEED_SPEC = "pvp-cancer-vcf"
#: A synthetic CPR number the surgeon registers (a valid date; never to be shown back)
NEW_CPR = "120483-3128"
RUN_TIMEOUT = 240

_LABELS_JS = """() => Array.from(document.querySelectorAll('input, select, textarea'))
  .filter(e => e.type !== 'hidden')
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
  .map(e => e.outerHTML.slice(0, 120))"""

#: Marks every focusable field with a key (a radio group is one Tab stop: arrow keys move inside it) and
#: returns the keys.
_FIELDS_JS = """() => [...new Set(Array.from(document.querySelectorAll('input, select, textarea, button'))
  .filter(e => e.type !== 'hidden' && !e.disabled && e.offsetParent !== null)
  .map((e, i) => { e.dataset.e2eIndex = e.type === 'radio' ? 'radio:' + e.name : String(i);
                   return e.dataset.e2eIndex; }))]"""




#: A small cohort the seed spec selects (vertebroplasty for cancer VCF in 2015, adults, EQ-5D-3L and ODI at
#: baseline and 3 months), written through RegistryWriter: the analyst's study run has patients to count.
_COHORT = r"""
import datetime as dt, hashlib
from spinereg.registry import RegistryWriter
w = RegistryWriter("default", "webtests-cohort", who="webtests-seed")
for i in range(12):
    pid = hashlib.sha256(f"e2e-cohort-{i}".encode()).hexdigest()[:32]
    w.create("patients", {"patient_id": pid, "sex": "female" if i % 2 else "male",
                          "birth_date": f"19{40 + i}-0{1 + i % 9}-15"})
    day = dt.date(2015, 1 + i % 12, 10)
    op = f"e2e-cohort-op-{i}"
    w.create("operations", {"operation_id": op, "patient_id": pid, "date": day.isoformat(), "hospital": "WT-H01",
                            "procedure_category": "vertebroplasty", "indication": "cancer_vcf"})
    w.create("treated_levels", {"operation_id": op, "level": "L1", "cement_volume_ml": 3.0})
    for tp, offset, base in (("baseline", -5, 3), ("3m", 90, 1)):
        eq = {f"eq5d3l_{d}": max(1, min(3, base - (i + k) % 2)) for k, d in enumerate(("mo", "sc", "ua", "pd", "ad"))}
        odi = {f"odi_{k}": (base + i + k) % 6 if tp == "baseline" else (i + k) % 3 for k in range(1, 11)}
        w.create("proms", {"prom_id": f"{op}-{tp}", "patient_id": pid, "operation_id": op, "timepoint": tp,
                           "answer_date": (day + dt.timedelta(days=offset)).isoformat(), **eq, **odi})
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Seeded]]:
    home = tmp_path_factory.mktemp("e2e")
    seeded = seeded_sqlite(home, tmp_path_factory.mktemp("seed-template"))
    run_python(home, seeded.db_url, _COHORT)
    server = start_server(home, seeded.db_url, env=web_env(home, seeded.db_url))
    try:
        yield server, seeded
    finally:
        stop_server(server)


def go(page: Any, target: Any) -> None:
    """Click ``target`` (a link or a submit button) and wait for the next page to load."""
    with page.expect_navigation():
        target.click()
    page.wait_for_load_state("load")


class Walk:
    """One browser context per user; checks each form page it meets."""

    def __init__(self, browser: Any, server: Server, shots: Path) -> None:
        self.browser = browser
        self.server = server
        self.shots = shots
        self.errors: list[str] = []
        self.checked: list[str] = []

    def page(self) -> Any:
        context = self.browser.new_context(viewport=PHONE, base_url=self.server.base)
        page = context.new_page()
        page.on("console", lambda m: self.errors.append(f"{page.url}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"{page.url}: {e}"))
        page.on("response", lambda r: self.errors.append(f"{r.url}: HTTP {r.status}") if r.status >= 400 else None)
        return page

    def check_form_page(self, page: Any, name: str) -> None:
        """390 px: no horizontal overflow; every field labelled and reached by Tab; a screenshot."""
        page.set_viewport_size(PHONE)
        width = page.evaluate("document.documentElement.scrollWidth")
        wide = page.evaluate("""() => Array.from(document.querySelectorAll('body *'))
          .filter(e => e.getBoundingClientRect().right > 391 || e.scrollWidth > 391)
          .slice(-3).map(e => e.tagName + ' ' + (e.className || '') + ' ' + (e.textContent || '').slice(0, 60))""")
        assert width <= PHONE["width"], f"{name}: the page is {width} px wide at 390 px; too wide: {wide}"
        unlabelled = page.evaluate(_LABELS_JS)
        assert unlabelled == [], f"{name}: fields without a label: {unlabelled}"
        indices = page.evaluate(_FIELDS_JS)
        assert indices, f"{name}: no form fields"
        reached: set[str] = set()
        page.locator("body").focus()
        page.evaluate("document.activeElement && document.activeElement.blur()")
        for _ in range(len(indices) + 15):
            page.keyboard.press("Tab")
            got = page.evaluate("document.activeElement ? (document.activeElement.dataset.e2eIndex || '') : ''")
            if got:
                reached.add(got)
        missing = set(indices) - reached
        assert not missing, f"{name}: fields not reached by Tab: " + ", ".join(
            page.locator(f'[data-e2e-index="{i}"]').first.evaluate("e => e.outerHTML.slice(0, 120)")
            for i in sorted(missing))
        page.screenshot(path=str(self.shots / f"{len(self.checked):02d}-{name}.png"), full_page=True)
        self.checked.append(name)

    def login(self, username: str, password: str = PASSWORD, *, code: str = "") -> Any:
        page = self.page()
        page.goto("/accounts/login/")
        self.check_form_page(page, f"login-{username}")
        page.get_by_label("User name").fill(username)
        page.get_by_label("Password", exact=True).fill(password)
        if code:
            page.get_by_label("Authenticator code").fill(code)
        go(page, page.get_by_role("button", name="Log in"))
        return page


def test_walk(live: tuple[Server, Seeded], tmp_path: Path) -> None:
    exe = chromium()
    from playwright.sync_api import sync_playwright

    server, seeded = live
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox"])
        try:
            walk = Walk(browser, server, tmp_path)
            # 1. an admin sets up the authenticator, then creates a surgeon through the user pages
            admin = walk.login("admin-s1")
            assert admin.url.endswith("/accounts/totp/"), admin.url  # an admin must set up TOTP first
            walk.check_form_page(admin, "totp-setup")
            key = base64.b32decode(admin.locator("#totp-secret").inner_text().strip())
            admin.get_by_label("Authenticator code").fill(totp(key))
            go(admin, admin.get_by_role("button", name="Confirm"))
            assert admin.url == server.base + "/"
            go(admin, admin.get_by_role("navigation", name="Main").get_by_role("link", name="Users"))
            assert admin.get_by_role("link", name="surgeon-s1").is_visible()
            go(admin, admin.get_by_role("link", name="Add a user"))
            walk.check_form_page(admin, "user-add")
            # a refused password first: the validators' message, nothing created
            admin.get_by_label("User name").fill("e2e-surgeon")
            admin.get_by_label("Role").select_option("surgeon")
            admin.get_by_label("Site").select_option(label="s1")
            admin.get_by_label("Password", exact=True).fill("short")
            admin.get_by_label("Password again").fill("short")
            go(admin, admin.get_by_role("button", name="Create user"))
            assert admin.get_by_text(re.compile("too short")).first.is_visible()
            walk.check_form_page(admin, "user-add-refused")
            admin.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
            admin.get_by_label("Password again").fill(NEW_PASSWORD)
            go(admin, admin.get_by_role("button", name="Create user"))
            assert admin.url == server.base + "/users/"
            row = admin.get_by_role("row").filter(has=admin.get_by_role("link", name="e2e-surgeon"))
            assert re.search(r"Surgeon\s+Webtest hospital 1\s+yes\s+no", row.inner_text()), row.inner_text()
            go(admin, admin.get_by_role("link", name="e2e-surgeon"))
            walk.check_form_page(admin, "user-edit")
            assert server.sql("SELECT s.role, t.code, u.is_active FROM auth_user u JOIN spinereg_web_staffprofile s "
                              "ON s.user_id = u.id JOIN spinereg_web_site t ON t.id = s.site_id "
                              "WHERE u.username = 'e2e-surgeon'") == [("surgeon", "s1", 1)]
            # the new surgeon logs in and sees their own site's patient only
            surgeon = walk.login("e2e-surgeon", NEW_PASSWORD)
            assert surgeon.url == server.base + "/"
            own, other = seeded.records["s1"]["pseudonym"], seeded.records["s2"]["pseudonym"]
            assert surgeon.get_by_role("link", name=own).is_visible()
            assert surgeon.get_by_role("link", name=other).count() == 0
            surgeon.screenshot(path=str(tmp_path / "surgeon-home.png"), full_page=True)
            # 2. the surgeon registers a patient by CPR number and an operation with two levels
            go(surgeon, surgeon.get_by_role("navigation", name="Main").get_by_role("link", name="Register patient"))
            walk.check_form_page(surgeon, "patient-register")
            surgeon.get_by_label("CPR number").fill(NEW_CPR)
            go(surgeon, surgeon.get_by_role("button", name="Register"))
            assert not contains_cpr(surgeon.content()) and NEW_CPR not in surgeon.content()
            pid = surgeon.url.rstrip("/").rsplit("/", 1)[-1]
            go(surgeon, surgeon.get_by_role("link", name="New operation"))
            walk.check_form_page(surgeon, "operation-new")
            surgeon.get_by_label(re.compile(r"^Date")).first.fill("2025-06-02")
            surgeon.get_by_label(re.compile(r"^Procedure category")).select_option("vertebroplasty")
            surgeon.get_by_label(re.compile(r"^Indication")).select_option("cancer_vcf")
            surgeon.get_by_label(re.compile(r"^ASA class")).fill("2")
            for n, level in ((1, "T12"), (2, "L1")):
                row = surgeon.get_by_role("group", name=f"Level row {n}")
                row.get_by_label(re.compile(r"^Level")).select_option(level)
                row.get_by_label(re.compile(r"^Cement volume")).fill("4")
            go(surgeon, surgeon.get_by_role("button", name="Save operation"))
            op_id = surgeon.url.rstrip("/").rsplit("/", 1)[-1]
            assert server.sql("SELECT level FROM spinereg_treated_levels WHERE operation_id = ? ORDER BY level",
                              op_id) == [("L1",), ("T12",)], surgeon.url
            assert server.sql("SELECT patient_id, hospital FROM spinereg_operations WHERE operation_id = ?",
                              op_id) == [(pid, "WT-H01")]
            # the surgeon locks and e-signs the operation form
            surgeon.goto(f"/records/operations/{op_id}/lock/")
            walk.check_form_page(surgeon, "record-lock")
            surgeon.get_by_label(re.compile("Authored")).check()
            surgeon.get_by_label("Your password").fill(NEW_PASSWORD)
            go(surgeon, surgeon.get_by_role("button", name="Sign and lock"))
            # 3. a reviewer records a leak at one level
            reviewer = walk.login("reviewer-s1")
            go(reviewer, reviewer.get_by_role("navigation", name="Main").get_by_role("link", name="Imaging review"))
            go(reviewer, reviewer.get_by_role("link", name=op_id))
            walk.check_form_page(reviewer, "review-form")
            reviewer.get_by_label(re.compile(r"modality", re.I)).select_option("ct")
            reviewer.get_by_label("Date of imaging").fill("2025-06-03")
            reviewer.get_by_role("group", name=re.compile(r"^T12: Cement")).get_by_label("No", exact=True).check()
            reviewer.get_by_role("group", name=re.compile(r"^L1: Cement")).get_by_label("Yes", exact=True).check()
            reviewer.get_by_label(re.compile(r"^L1: Leak mechanism")).select_option("yeom_b")
            reviewer.get_by_label(re.compile(r"^L1: Where the cement went")).select_option("intradiscal")
            reviewer.get_by_role("group", name=re.compile(r"^L1: Leak caused")).get_by_label("No", exact=True).check()
            go(reviewer, reviewer.get_by_role("button", name="Save the review"))
            assert server.sql("SELECT level, leak FROM spinereg_imaging_findings WHERE operation_id = ? ORDER BY level",
                              op_id) == [("L1", 1), ("T12", 0)], reviewer.locator("main").inner_text()
            # 4. a data manager corrects a locked value, giving a reason
            manager = walk.login("data_manager-s1")
            manager.goto(f"/operations/{op_id}/edit/")
            walk.check_form_page(manager, "operation-edit-locked")
            manager.get_by_label(re.compile(r"^ASA class")).fill("3")
            manager.get_by_label(re.compile(r"^Reason for the change")).fill("ASA class corrected from the chart")
            go(manager, manager.get_by_role("button", name="Save operation"))
            assert server.sql("SELECT asa_class FROM spinereg_operations WHERE operation_id = ?", op_id) == [(3,)]
            # 5. the auditor sees each change
            auditor = walk.login("auditor-s1")
            auditor.goto(f"/audit/operations/{op_id}/")
            trail = auditor.locator("main").inner_text()
            for seen in ("create", "lock", "update", "ASA class corrected from the chart", "e2e-surgeon",
                         "data_manager-s1"):
                assert seen in trail, (seen, trail[:3000])
            auditor.goto("/audit/users/reviewer-s1/")
            by_reviewer = auditor.locator("main").inner_text()
            assert "imaging_findings" in by_reviewer and op_id in by_reviewer, by_reviewer[:3000]
            auditor.screenshot(path=str(tmp_path / "audit-operation.png"), full_page=True)
            # 6. an analyst runs the seed study spec and downloads the report
            analyst = walk.login("analyst-s1")
            go(analyst, analyst.get_by_role("navigation", name="Main").get_by_role("link", name="Studies"))
            walk.check_form_page(analyst, "studies")
            go(analyst, analyst.get_by_role("button", name=f"Run {SEED_SPEC}"))
            assert re.search(r"/studies/runs/[^/]+/$", analyst.url), analyst.url
            deadline = time.monotonic() + RUN_TIMEOUT
            while analyst.locator('meta[http-equiv="refresh"]').count() and time.monotonic() < deadline:
                time.sleep(1)
                analyst.reload(wait_until="load")
            assert analyst.get_by_text("Done.").is_visible(), analyst.locator("main").inner_text()
            analyst.screenshot(path=str(tmp_path / "study-run.png"), full_page=True)
            with analyst.expect_download() as info:
                analyst.get_by_role("link", name="report.html").click()
            report = tmp_path / "report.html"
            info.value.save_as(report)
            text = report.read_text(encoding="utf-8")
            assert "<html" in text and "vertebroplasty" in text.lower()
            assert not contains_cpr(text)
        finally:
            browser.close()
    assert walk.errors == []
    assert len(walk.checked) >= 5
    assert len(list(tmp_path.glob("*.png"))) >= 6
