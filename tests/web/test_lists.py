"""The staff list pages: keyset pagination, pseudonym prefix search, the site rule.

One server (gunicorn) on a synthetic registry of 1,500 patients; what the pages list is
compared with the SQLite file read directly (``Server.sql``), not with the app's queries.
"""

from __future__ import annotations

import html
import re
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from tests.web.conftest import PASSWORD, Browser, Server, ok, run_cli, run_parallel, start_server, stop_server

PATIENT_LINK = re.compile(r'<td><a href="/patients/([^/"]+)/">')
OPERATION_ROW = re.compile(r'<tr><td>(\d{4}-\d\d-\d\d)</td><td>([^<]+)</td>')
NEXT = re.compile(r'<a href="([^"]*)" rel="next">')
PREVIOUS = re.compile(r'<a href="([^"]*)" rel="prev">')

# user -> (hospital, department or None); None: a national role
USERS: dict[str, tuple[str, str | None] | None] = {
    "surg-h01": ("SYN-H01", None),  # a whole hospital
    "surg-h04n": ("SYN-H04", "Neurosurgery"),  # one department
    "surg-h02": ("SYN-H02", None),
    "surg-empty": ("SYN-H01", "No such department"),  # a site without records
    "analyst1": None,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("lists")
    db = f"sqlite:///{home / 'registry.sqlite3'}"
    ok(run_cli(home, "db", "init", "--db", db))
    ok(run_cli(home, "synth", "--patients", "1500", "--seed", "11", "--db", db, timeout=300))
    run_parallel(home, ["site", "add", "h01", "--name", "Hospital 1", "--hospital", "SYN-H01", "--db", db],
                 ["site", "add", "h04n", "--name", "Hospital 4 neuro", "--hospital", "SYN-H04",
                  "--department", "Neurosurgery", "--db", db],
                 ["site", "add", "h02", "--name", "Hospital 2", "--hospital", "SYN-H02", "--db", db],
                 ["site", "add", "empty", "--name", "Empty", "--hospital", "SYN-H01",
                  "--department", "No such department", "--db", db])
    sites = {"surg-h01": "h01", "surg-h04n": "h04n", "surg-h02": "h02", "surg-empty": "empty"}
    run_parallel(home, *[["user", "add", name, "--role", "surgeon", "--site", site, "--db", db]
                         for name, site in sites.items()],
                 ["user", "add", "analyst1", "--role", "analyst", "--db", db], SPINEREG_PASSWORD=PASSWORD)
    srv = start_server(home, db)
    try:
        yield srv
    finally:
        stop_server(srv)


def _browser(server: Server, user: str) -> Browser:
    b = server.browser()
    assert b.login(user).status == 302
    return b


def _site_where(user: str) -> tuple[str, list[str]]:
    site = USERS[user]
    if site is None:
        return "1 = 1", []
    hospital, department = site
    if department is None:
        return "hospital = ?", [hospital]
    return "hospital = ? AND department = ?", [hospital, department]


def _visible_patients(server: Server, user: str) -> list[str]:
    """The user's patients, sorted, from the SQLite file (every patient for a national role)."""
    if USERS[user] is None:
        return [r[0] for r in server.sql("SELECT patient_id FROM spinereg_patients")]
    where, params = _site_where(user)
    return sorted(r[0] for r in server.sql(f"SELECT DISTINCT patient_id FROM spinereg_operations WHERE {where}",
                                           *params))


def _walk(b: Browser, path: str, rows: re.Pattern[str], link: re.Pattern[str]) -> tuple[list[Any], int, str]:
    """Follow the ``link`` links from ``path``: every row of every page, the number of pages, the last path.
    Walking forward from the first page, every page but the last is full; walking back from the last page
    (``rel="prev"``), the first and last pages visited may be short."""
    seen: list[Any] = []
    pages = 0
    while True:
        page = b.get(path)
        assert page.status == 200, (path, page.status, page.body[:300])
        pages += 1
        found = rows.findall(page.body)
        assert len(found) <= 50
        seen.extend(found)
        more = link.search(page.body)
        if more is None:
            return seen, pages, path
        assert len(found) == 50 or (link is PREVIOUS and pages == 1), "a page before the last one is full"
        base = path.split("?")[0]
        path = base + html.unescape(more.group(1))
        assert pages < 200


@pytest.mark.parametrize("user", list(USERS))
def test_home_keyset_visits_every_patient_once(server: Server, user: str) -> None:
    b = _browser(server, user)
    expected = _visible_patients(server, user)
    seen, pages, last = _walk(b, "/", PATIENT_LINK, NEXT)
    assert seen == sorted(seen), "pseudonym order"
    assert len(seen) == len(set(seen)), "no patient twice"
    assert seen == expected
    assert pages == max(1, -(-len(expected) // 50))
    back, _pages, _first = _walk(b, last, PATIENT_LINK, PREVIOUS)
    # backwards: the pages in reverse order, each page's rows in pseudonym order
    assert sorted(back) == expected and len(back) == len(expected)
    # the count: exact up to 1000, else "More than 1000"
    first = b.get("/").body
    if len(expected) > 1000:
        assert "More than 1000 patients" in first
    else:
        assert re.search(rf"<p>{len(expected)} patients?</p>", first), first[:2000]


def test_sites_see_no_other_sites_patients(server: Server) -> None:
    only_h01 = sorted(set(_visible_patients(server, "surg-h01")) - set(_visible_patients(server, "surg-h02")))
    assert only_h01
    b = _browser(server, "surg-h02")
    seen, _pages, _last = _walk(b, "/", PATIENT_LINK, NEXT)
    assert not set(seen) & set(only_h01)
    pid = only_h01[len(only_h01) // 2]
    assert PATIENT_LINK.findall(b.get(f"/search/?q={pid}").body) == []
    assert b.get(f"/patients/{pid}/").status == 404
    assert _browser(server, "surg-h01").get(f"/patients/{pid}/").status == 200
    # an operation of another site is no place to start a page from
    (op,) = server.sql("SELECT operation_id FROM spinereg_operations WHERE hospital = 'SYN-H01' LIMIT 1")[0]
    assert b.get(f"/operations/?after={op}").status == 404


@pytest.mark.parametrize(("user", "prefix"), [
    ("analyst1", "SYN00"), ("analyst1", "SYN0012"), ("analyst1", "SYN01234"), ("analyst1", "syn0012"),
    ("analyst1", "SYN9"), ("analyst1", "SYN0012_"), ("analyst1", "SYN0012%"),
    ("surg-h01", "SYN00"), ("surg-h01", "SYN001"), ("surg-h04n", "SYN0"), ("surg-h04n", "SYN01"),
    ("surg-empty", "SYN"),
])
def test_prefix_search_returns_exactly_the_matching_pseudonyms(server: Server, user: str, prefix: str) -> None:
    b = _browser(server, user)
    expected = [p for p in _visible_patients(server, user) if p.startswith(prefix)]
    seen, _pages, _last = _walk(b, "/search/?" + urllib.parse.urlencode({"q": prefix}), PATIENT_LINK, NEXT)
    assert seen == expected


@pytest.mark.parametrize("user", ["surg-h01", "surg-h04n", "analyst1"])
def test_operations_keyset_newest_first(server: Server, user: str) -> None:
    b = _browser(server, user)
    where, params = _site_where(user)
    expected = [(d, o) for d, o in server.sql(
        f"SELECT date, operation_id FROM spinereg_operations WHERE {where} ORDER BY date DESC, operation_id DESC",
        *params)]
    seen, pages, last = _walk(b, "/operations/", OPERATION_ROW, NEXT)
    assert seen == expected
    assert pages == max(1, -(-len(expected) // 50))
    back, _pages, _first = _walk(b, last, OPERATION_ROW, PREVIOUS)
    assert sorted(back, reverse=True) == expected and len(back) == len(expected)
