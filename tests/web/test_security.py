"""Security of the web registry, over every URL pattern of the URLconf (one server for the module).

* every pattern but ``/healthz``, the login pages, i18n and static files sends an anonymous GET and POST
  to the login page;
* a POST without a CSRF token gets 403 on every URL (the CSRF failure, not a permission refusal);
* lockout after 5 failed logins (the locked page; the right password refused while locked);
* security headers on every page, HttpOnly and SameSite session cookies;
* no page any role reaches (a crawl of every same-origin link from home) shows a CPR-shaped number
  (spinereg.data.contains_cpr on every body), while the registry holds patients registered by CPR number;
* the authentication events in the server log carry no password, user name or CPR number.
"""

from __future__ import annotations

import re
import urllib.parse
from collections import deque
from collections.abc import Iterator

import pytest

from spinereg.data import contains_cpr
from tests.web._support import (
    CPRS,
    OPEN_NAMES,
    ROLES,
    SITES,
    TOKEN_API_OPEN,
    Pattern,
    Seeded,
    UrlConf,
    csrf_token,
    login_staff,
    seeded_sqlite,
    url_patterns,
    web_env,
)
from tests.web.conftest import PASSWORD, Response, Server, start_server, stop_server

#: how many pages the crawl visits per role at most (the registry is small: this is never reached)
CRAWL_LIMIT = 150


@pytest.fixture(scope="module")
def urlconf(tmp_path_factory: pytest.TempPathFactory) -> UrlConf:
    return url_patterns(tmp_path_factory.mktemp("urlconf"))


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Seeded]]:
    home = tmp_path_factory.mktemp("security")
    seeded = seeded_sqlite(home, tmp_path_factory.mktemp("seed-template"))
    server = start_server(home, seeded.db_url, env=web_env(home, seeded.db_url))
    try:
        yield server, seeded
    finally:
        stop_server(server)


#: a questionnaire link's token that names no invitation (the page is open: the token is its credential)
UNKNOWN_TOKEN = "x" * 43


def fill(p: Pattern, seeded: Seeded) -> str:
    return p.path({**seeded.values(SITES[0]), "token": UNKNOWN_TOKEN}) if p.params else p.path({})


def protected(conf: UrlConf) -> list[Pattern]:
    got = [p for p in conf.patterns if not p.is_open() and not p.is_token_api()]
    assert {"home", "patient", "users", "user-edit", "totp-setup", "logout"} <= {p.name for p in got}
    return got


def assert_headers(resp: Response, where: str) -> None:
    csp = resp.headers.get("Content-Security-Policy", "")
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, where
    assert "unsafe-inline" not in csp, where
    assert resp.headers.get("X-Frame-Options") == "DENY", where
    assert resp.headers.get("X-Content-Type-Options") == "nosniff", where
    assert resp.headers.get("Referrer-Policy") == "same-origin", where


def test_open_pages_are_exactly_the_known_ones(urlconf: UrlConf) -> None:
    assert {p.name for p in urlconf.patterns if p.is_open() and not p.is_token_api()} == set(OPEN_NAMES)


def test_token_api_refuses_callers_without_a_token(secured: tuple[Server, Seeded], urlconf: UrlConf) -> None:
    """The FHIR API takes bearer tokens only: without one, 401 - also for a logged-in browser session (its
    endpoints are exempt from CSRF, so a session cookie must never authenticate them)."""
    server, seeded = secured
    api = [p for p in urlconf.patterns if p.is_token_api()]
    if not api:
        pytest.skip("no token API in this installation")
    anonymous = server.browser()
    admin = login_staff(server, "admin-s1", "admin")
    wrong = []
    for p in api:
        path = fill(p, seeded)
        for who, b in (("anonymous", anonymous), ("admin session", admin)):
            for method, resp in (("GET", b.get(path)), ("POST", b.request(path, {"resourceType": "Patient"}))):
                if p.name in TOKEN_API_OPEN and method == "GET":
                    ok_ = resp.status == 200
                elif p.name in TOKEN_API_OPEN:
                    ok_ = resp.status in (401, 405)
                else:
                    ok_ = resp.status == 401 and resp.headers.get("WWW-Authenticate", "").startswith("Bearer")
                if not ok_:
                    wrong.append(f"{method} {path} as {who}: {resp.status}")
    assert not wrong, wrong


def test_anonymous_get_and_post_go_to_the_login(secured: tuple[Server, Seeded], urlconf: UrlConf) -> None:
    server, seeded = secured
    b = server.browser()
    b.get("/accounts/login/")  # a CSRF cookie: the POST is refused for want of a login, not of a token
    wrong = []
    for p in protected(urlconf):
        path = fill(p, seeded)
        for method, resp in (("GET", b.get(path)), ("POST", b.request(path, {"csrfmiddlewaretoken": csrf_token(b)}))):
            target = urllib.parse.urlsplit(resp.location())
            if resp.status != 302 or target.path != "/accounts/login/" or \
                    urllib.parse.parse_qs(target.query).get("next") != [path]:
                wrong.append(f"{method} {path}: {resp.status} {resp.location()}")
    assert not wrong, wrong
    assert b.cookie("sessionid") is None
    # the open pages answer without a login
    assert b.get("/healthz").status == 200 and b.get("/accounts/login/").status == 200
    assert b.get("/static/web/style.css").status == 200


def test_post_without_csrf_token_is_refused_everywhere(secured: tuple[Server, Seeded], urlconf: UrlConf) -> None:
    """Logged in as admin (every capability), a POST without the token gets the CSRF 403 on every URL."""
    server, seeded = secured
    admin = login_staff(server, "admin-s1", "admin")
    before = server.sql("SELECT COUNT(*) FROM spinereg_audit")[0][0]
    wrong = []
    for p in urlconf.patterns:
        if p.route.startswith("static/") or p.is_token_api():  # token-only API: tested above
            continue
        path = fill(p, seeded)
        resp = admin.request(path, {"role": "analyst", "active": "on", "username": "x", "language": "da"})
        if resp.status != 403 or "CSRF" not in resp.body:
            wrong.append(f"POST {path}: {resp.status}")
    assert not wrong, wrong
    assert admin.get("/").status == 200  # still logged in: the refused logout POST did nothing
    assert server.sql("SELECT COUNT(*) FROM spinereg_audit")[0][0] == before
    assert server.sql("SELECT role FROM spinereg_web_staffprofile s JOIN auth_user u ON u.id = s.user_id "
                      "WHERE u.username = 'surgeon-s1'") == [("surgeon",)]


#: A synthetic CPR number registered through the web page (a valid date; never to be shown or logged)
WEB_CPR = "281190-2776"
SHOWN = (*CPRS.values(), WEB_CPR)


def test_cpr_registered_through_the_web_is_never_shown(secured: tuple[Server, Seeded],
                                                       urlconf: UrlConf) -> None:
    """The registration page (when installed) turns the number into the pseudonym; no page after it, nor the
    form shown again on a refusal, carries the number."""
    server, _ = secured
    if "patient-register" not in {p.name for p in urlconf.patterns}:
        pytest.skip("no CPR registration page in this installation (the seed registered by register_patient)")
    before = {r[0] for r in server.sql("SELECT patient_id FROM spinereg_patients")}
    b = login_staff(server, "surgeon-s1", "surgeon")
    done = b.post_form("/clinical/register/", {"cpr": WEB_CPR})
    assert done.status == 302, done.body[-2000:]
    (pid,) = {r[0] for r in server.sql("SELECT patient_id FROM spinereg_patients")} - before
    for resp in (done, b.get(done.location()), b.get(f"/patients/{pid}/")):
        shown = contains_cpr(resp.body) or any(c in resp.body or c.replace("-", "") in resp.body for c in SHOWN)
        assert not shown and resp.status in (200, 302)
    # refused (no such date: 31 November), and the number is not shown back in the form
    refused = b.post_form("/clinical/register/", {"cpr": "311190-2776"})
    assert refused.status == 200 and "311190" not in refused.body and not contains_cpr(refused.body)


def test_lockout_after_five_failures(secured: tuple[Server, Seeded]) -> None:
    server, _ = secured
    b = server.browser()
    for i in range(5):
        resp = b.login("auditor-s2", f"wrong-password-{i}-XYZZY")
        assert resp.status in (200, 429)
        assert b.cookie("sessionid") is None
    locked = b.login("auditor-s2")  # the right password, while locked
    assert locked.status == 429
    assert "locked" in locked.body.lower()
    assert_headers(locked, "locked page")
    assert server.browser().login("auditor-s2").status == 429  # from a fresh client too (locked by name)
    assert server.browser().login("auditor-s1").status == 302  # another account is not affected


def test_auth_events_in_the_log_carry_no_password_name_or_cpr(secured: tuple[Server, Seeded]) -> None:
    server, _ = secured
    b = server.browser()
    for cpr in CPRS.values():  # a CPR number typed as the user name, and as the password
        b.login(cpr, "a-password-MARKER-31")
        b.login("data_manager-s2", cpr)
    assert login_staff(server, "data_manager-s2", "data_manager", reuse=False)
    log = server.log.read_text()
    assert "login failed" in log and "login user_id=" in log
    assert "MARKER" not in log and PASSWORD not in log and "wrong-password" not in log
    assert not any(c in log or c.replace("-", "") in log for c in SHOWN)
    leaked = contains_cpr(log)
    assert not leaked, "the server log holds a CPR-shaped number"
    for name in ("data_manager-s2", "auditor-s2", "auditor-s1", "admin-s1"):
        assert name not in log


def test_security_headers_and_session_cookie(secured: tuple[Server, Seeded]) -> None:
    server, _ = secured
    b = server.browser()
    assert_headers(b.get("/accounts/login/"), "login page")
    resp = b.login("surgeon-s1")
    raw = [v for k, v in resp.headers.items() if k.lower() == "set-cookie"]
    session = next(c for c in raw if c.startswith("sessionid="))
    assert "HttpOnly" in session and "SameSite=Lax" in session
    csrf = next(c for c in raw if c.startswith("csrftoken="))
    assert "SameSite=Lax" in csrf
    assert_headers(b.get("/"), "home")


def _links(base: str, page: Response, here: str) -> list[str]:
    out = []
    for href in re.findall(r'href="([^"]+)"', page.body):
        url = urllib.parse.urljoin(base + here, href.replace("&amp;", "&"))
        parts = urllib.parse.urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" != base or parts.path.startswith("/static/"):
            continue
        out.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return out


@pytest.mark.parametrize("role", ROLES)
def test_no_page_any_role_reaches_shows_a_cpr_number(secured: tuple[Server, Seeded], role: str) -> None:
    server, seeded = secured
    registered = {r[0] for r in server.sql("SELECT patient_id FROM spinereg_patients")}
    assert {seeded.records[s]["pseudonym"] for s in SITES} <= registered  # patients registered by CPR number
    b = login_staff(server, f"{role}-s1", role)
    seen: set[str] = set()
    queue = deque(["/"])
    pages = 0
    while queue and pages < CRAWL_LIMIT:
        path = queue.popleft()
        if path in seen:
            continue
        seen.add(path)
        resp = b.get(path)
        pages += 1
        assert resp.status in (200, 302, 403, 404), (role, path, resp.status)
        shown = contains_cpr(resp.body) or any(c in resp.body or c.replace("-", "") in resp.body for c in SHOWN)
        assert not shown, f"{path} shows a CPR-shaped number to {role}"  # (the body is not printed)
        if resp.status == 200:
            assert_headers(resp, path)
            queue.extend(u for u in _links(server.base, resp, path) if u not in seen)
    assert pages < CRAWL_LIMIT, f"the crawl for {role} did not finish within {CRAWL_LIMIT} pages"
    assert pages >= 2, seen
    if role in ("admin", "surgeon"):
        # the crawl reached the site's patient page (own site), by following links only
        assert f"/patients/{seeded.records['s1']['pseudonym']}/" in seen
