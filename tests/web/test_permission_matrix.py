"""The permission matrix: every URL pattern x every role x own site / other site -> the expected status,
on SQLite and on PostgreSQL.

The contract (spinereg.web.permissions): every staff view declares its capability with
``@staff_view(capability)``, and a URL parameter naming a record uses a name of ``URL_OBJECTS``.
The patterns and their capabilities are read from the URLconf in a process of its own (the web
settings cannot load in the pytest process); the expected statuses come from ``CAPABILITIES`` and
the site rule, not from the views:

* the role lacks the capability -> 403 (before anything else, even for a missing record);
* it has it, the URL names a record of the other site, and the role is not national -> 404;
* it has it and the record does not exist -> 404;
* else a GET -> 200 (405 when the view does not allow GET), and a POST with a CSRF token and an
  empty form -> 200 (the form again, with its errors) or 302, 405 when the view does not allow POST.

The registry has two sites, each with a patient, an operation with two levels, a complication, an
imaging finding, and one user per role (tests/web/_support.py).
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import CI
from tests.web._support import (
    LOGIN_ONLY_NAMES,
    NATIONAL,
    ROLES,
    SITES,
    UNSCOPED_PARAMS,
    Pattern,
    Seeded,
    UrlConf,
    csrf_token,
    login_staff,
    seed,
    seeded_sqlite,
    url_patterns,
    web_env,
)
from tests.web.conftest import Browser, Server, start_server, stop_server

MISSING = "no-such-record"
#: Patterns whose parameter names something that may exist without a record: a missing one is an empty page.
#: audit-user: the trail of an actor name (command-line and import actors are not web users, and a user's
#: entries outlive the account), so an unknown name shows an empty trail.
MISSING_IS_EMPTY = {"audit-user"}


@pytest.fixture(scope="module")
def urlconf(tmp_path_factory: pytest.TempPathFactory) -> UrlConf:
    return url_patterns(tmp_path_factory.mktemp("urlconf"))


def staff_patterns(conf: UrlConf) -> list[Pattern]:
    return [p for p in conf.patterns if not p.is_open() and not p.is_token_api() and p.name not in LOGIN_ONLY_NAMES]


def test_every_staff_view_declares_its_capability(urlconf: UrlConf) -> None:
    """A page that is neither open nor login-only must carry @staff_view; its record parameters use URL_OBJECTS."""
    undeclared = [f"{p.route} ({p.view})" for p in staff_patterns(urlconf) if p.capability is None]
    assert not undeclared, "every staff view must declare its capability (@staff_view): " + ", ".join(undeclared)
    unknown_cap = [f"{p.route}: {p.capability}" for p in staff_patterns(urlconf)
                   if p.capability not in urlconf.capabilities]
    assert not unknown_cap, unknown_cap
    known = set(urlconf.url_objects) | set(UNSCOPED_PARAMS)
    odd = [f"{p.route}: {', '.join(sorted(set(p.params) - known))}" for p in staff_patterns(urlconf)
           if p.regex or set(p.params) - known]
    assert not odd, "URL parameters naming a record must use permissions.URL_OBJECTS names: " + "; ".join(odd)
    # an unscoped object (a study run) is for national roles only: no site rule to check
    for p in staff_patterns(urlconf):
        if set(p.params) & set(UNSCOPED_PARAMS):
            assert p.capability is not None and urlconf.capabilities[p.capability] <= NATIONAL, p.route
    # the open and login-only pages are exactly the known ones (a new open page is a decision, not an accident)
    unguarded = {p.name for p in urlconf.patterns
                 if (p.is_open() or p.name in LOGIN_ONLY_NAMES) and not p.is_token_api()}
    assert unguarded == {"login", "logout", "totp-setup", "healthz", "set_language", "followup-questionnaire"}
    # the matrix below covers something: the user pages at least
    assert {"home", "patient", "users", "user-add", "user-edit"} <= {p.name for p in staff_patterns(urlconf)}


@dataclass(frozen=True)
class Case:
    method: str
    pattern: Pattern
    user: str
    role: str
    target: str  # "own", "other", "missing" or "-" (no record in the URL)
    path: str
    expected: tuple[int, ...]


def expected_status(method: str, p: Pattern, role: str, target: str, conf: UrlConf) -> tuple[int, ...]:
    assert p.capability is not None
    if role not in conf.capabilities[p.capability]:
        return (403,)
    hidden = (target == "missing" and p.name not in MISSING_IS_EMPTY) or (target == "other" and role not in NATIONAL)
    if not p.allows(method):
        return (404, 405) if hidden else (405,)  # the method check may come before or after the lookup
    if hidden:
        return (404,)
    return (200,) if method == "GET" else (200, 302)


def cases(conf: UrlConf, seeded: Seeded) -> list[Case]:
    """GET: every user (6 roles x 2 sites) on their own site's and the other site's records; the users of the
    first site also on a missing record, and they POST too (own, other, missing)."""
    out: list[Case] = []
    for p in staff_patterns(conf):
        for user, info in sorted(seeded.users.items()):
            role, site = info["role"], info["site"]
            first = site == SITES[0]
            other = next(s for s in SITES if s != site)
            targets: dict[str, dict[str, str]] = {"-": {}} if not p.params else {
                "own": seeded.values(site), "other": seeded.values(other),
                **({"missing": dict.fromkeys(p.params, MISSING)} if first else {})}
            if set(p.params) & set(UNSCOPED_PARAMS):  # a national object: a missing one only
                targets = {"missing": {k: UNSCOPED_PARAMS.get(k, MISSING) for k in p.params}}
            for target, values in targets.items():
                for method in ("GET", "POST") if first else ("GET",):
                    out.append(Case(method, p, user, role, target, p.path(values),
                                    expected_status(method, p, role, target, conf)))
    return out


def run_matrix(server: Server, conf: UrlConf, seeded: Seeded, *, posts: bool = True) -> tuple[int, list[str]]:
    """Run the cases, each user's in order (GETs first: an empty form changes nothing, but a GET should see
    the seeded state), three users at a time (the server runs two workers)."""
    from concurrent.futures import ThreadPoolExecutor

    browsers: dict[str, Browser] = {u: login_staff(server, u, info["role"]) for u, info in seeded.users.items()}
    all_cases = [c for c in cases(conf, seeded) if posts or c.method == "GET"]

    def run(user: str) -> list[str]:
        b, wrong = browsers[user], []
        for case in sorted((c for c in all_cases if c.user == user), key=lambda c: c.method):
            if case.method == "GET":
                got = b.get(case.path).status
            else:
                got = b.request(case.path, {"csrfmiddlewaretoken": csrf_token(b)}).status
            if got not in case.expected:
                wrong.append(f"{case.method} {case.path} [{case.pattern.label}, {case.pattern.capability}] as "
                             f"{case.role} ({case.target} site): {got}, expected "
                             f"{'/'.join(map(str, case.expected))}")
        return wrong

    with ThreadPoolExecutor(max_workers=3) as pool:
        wrong = [w for ws in pool.map(run, sorted(browsers)) for w in ws]
    return len(all_cases), wrong


def pg_cluster_or_skip() -> object:
    from tests.registry.conftest import PgCluster

    try:
        return PgCluster()
    except Exception as exc:  # no PostgreSQL binaries, or they would not start
        msg = f"cannot start a throwaway PostgreSQL cluster: {exc}"
        if CI:
            pytest.fail(msg + " (CI=true: PostgreSQL is required)")
        pytest.skip(msg)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def matrix_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                  ) -> Iterator[tuple[Server, Seeded]]:
    home = tmp_path_factory.mktemp(f"matrix-{request.param}")
    cluster = None
    if request.param == "sqlite":
        seeded = seeded_sqlite(home, tmp_path_factory.mktemp("seed-template"))
    else:
        cluster = pg_cluster_or_skip()
        seeded = seed(home, cluster.create_database())  # type: ignore[attr-defined]
    server = start_server(home, seeded.db_url, "--workers", "2", env=web_env(home, seeded.db_url))
    try:
        yield server, seeded
    finally:
        stop_server(server)
        if cluster is not None:
            cluster.stop()  # type: ignore[attr-defined]


def test_permission_matrix(matrix_server: tuple[Server, Seeded], urlconf: UrlConf) -> None:
    server, seeded = matrix_server
    assert set(ROLES) == {info["role"] for info in seeded.users.values()}
    started = time.monotonic()
    # PostgreSQL: the GET rows (the site rule's queries); the POST rows exercise no database difference
    posts = server.db_url.startswith("sqlite")
    n, wrong = run_matrix(server, urlconf, seeded, posts=posts)
    elapsed = time.monotonic() - started
    assert not wrong, f"{len(wrong)} of {n} requests answered wrongly:\n" + "\n".join(wrong)
    # every pattern x 12 users (6 roles x 2 sites) x GET (and x 6 users x POST)
    n_patterns = len(staff_patterns(urlconf))
    assert n >= n_patterns * len(seeded.users) * (3 if posts else 2) // 2
    print(f"\npermission matrix: {n} requests ({n_patterns} URL patterns x {len(seeded.users)} users), "
          f"{elapsed:.1f} s")


def test_login_only_pages_need_a_login_but_no_capability(matrix_server: tuple[Server, Seeded]) -> None:
    """TOTP setup and logout: any logged-in staff user (no capability); anonymous users go to the login."""
    server, _seeded = matrix_server
    b = login_staff(server, "analyst-s2", "analyst", reuse=False)
    assert b.get("/accounts/totp/").status == 200
    assert b.request("/accounts/logout/", {"csrfmiddlewaretoken": csrf_token(b)}).status == 302
    assert b.get("/").location().startswith("/accounts/login/")


def test_disabled_user_is_logged_out_at_the_next_request(matrix_server: tuple[Server, Seeded]) -> None:
    """Disabling through the user page ends the user's open session; enabling lets them log in again."""
    server, _seeded = matrix_server
    victim = login_staff(server, "reviewer-s2", "reviewer", reuse=False)
    admin = login_staff(server, "admin-s2", "admin")
    page = admin.get("/users/reviewer-s2/")
    assert page.status == 200
    form = {"csrfmiddlewaretoken": admin.csrf(page), "role": "reviewer", "site": _site_pk(page.body, "s2")}
    assert admin.request("/users/reviewer-s2/", form).status == 302  # "active" unticked: disabled
    assert victim.get("/").location().startswith("/accounts/login/")
    assert server.browser().login("reviewer-s2").status == 200  # refused
    assert admin.request("/users/reviewer-s2/", {**form, "active": "on"}).status == 302
    assert server.browser().login("reviewer-s2").status == 302


def _site_pk(body: str, code: str) -> str:
    m = re.search(r'<option value="(\d+)"[^>]*>' + re.escape(code) + "<", body)
    assert m, body[:2000]
    return m.group(1)


def test_user_pages_validate_and_log_by_id(matrix_server: tuple[Server, Seeded]) -> None:
    """The add form's refusals (Django's validators, the site rule, a taken name), the own-account guard,
    no password data on the list, and account events logged by numeric id only."""
    server, _seeded = matrix_server
    admin = login_staff(server, "admin-s1", "admin")
    page = admin.get("/users/add/")
    base = {"csrfmiddlewaretoken": admin.csrf(page), "username": "new-analyst", "role": "analyst", "site": "",
            "password1": "a-fine-long-passphrase-42", "password2": "a-fine-long-passphrase-42"}
    refusals = {
        "The two passwords differ.": {"password2": "something-else-entirely-9"},
        "This role works at one site: choose the site.": {"role": "surgeon"},
        "This user name is taken.": {"username": "surgeon-s1"},
        "This password is too common.": {"password1": "password12345", "password2": "password12345"},
        "The password is too similar to the username.": {"username": "passphrase-fine-long",
                                                         "password1": "passphrase-fine-long1",
                                                         "password2": "passphrase-fine-long1"},
    }
    for message, change in refusals.items():
        resp = admin.request("/users/add/", {**base, **change})
        assert resp.status == 200 and message in html.unescape(resp.body), (message, resp.body[-2000:])
    assert "new-analyst" not in admin.get("/users/").body
    assert admin.request("/users/add/", base).status == 302
    listing = html.unescape(admin.get("/users/").body)
    row = re.search(r"<tr><td><a href=\"/users/new-analyst/\">new-analyst</a></td>(.*?)</tr>", listing)
    assert row and re.sub(r"<[^>]+>", "|", row.group(1)).split("||")[:4] == ["|Analyst", "All sites", "yes", "no"]
    assert "argon2" not in listing and "pbkdf2" not in listing and "$" not in listing
    assert server.browser().login("new-analyst", "a-fine-long-passphrase-42").status == 302
    # an admin cannot disable or demote themselves
    own = admin.get("/users/admin-s1/")
    refused = admin.request("/users/admin-s1/", {"csrfmiddlewaretoken": admin.csrf(own), "role": "admin",
                                                 "site": _site_pk(own.body, "s1")})
    assert refused.status == 200 and "You cannot disable your own account" in html.unescape(refused.body)
    assert admin.get("/").status == 200
    log = server.log.read_text()
    assert re.search(r"user created user_id=\d+ role=analyst site_id=None by user_id=\d+", log), log[-2000:]
    assert "new-analyst" not in log and "a-fine-long-passphrase" not in log
