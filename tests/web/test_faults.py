"""Faults under load (issue 15, point 3): a real ``spinereg serve`` (gunicorn, 2 workers) driven by the load
benchmark's mixed workload (``benchmarks/bench_web.py``: patients answering their links, FHIR clients, surgeons
saving operations with two levels, staff lists), then the database is read directly to count what was written
(:func:`check_writes`: lost acknowledged writes, duplicates, operations without their levels, questionnaires
without their invitation marked used or the other way round, rows without their audit entry, audit entries
without their row).

* kill -9 one worker mid-load, then the whole server (master and workers): nothing partial, every acknowledged
  write present;
* restart PostgreSQL mid-load: clients get clean errors (an error page or an OperationOutcome, no traceback) and
  the server serves again without being restarted (``CONN_HEALTH_CHECKS``);
* the same questionnaire link POSTed from two threads at once: stored once, the other gets 410;
* ``spinereg db backup`` under load, restored into a fresh file: every row in it has its audit entries, its audit
  trail is the live trail's beginning, and every write acknowledged before the backup began is in it.

PostgreSQL missing: the PostgreSQL test skips, saying why (a failure under CI=true).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from benchmarks.bench_web import PASSWORD as BENCH_PASSWORD
from benchmarks.bench_web import SITE, USERS, Hit, Mix, Prepared, check_writes, login, prepare_mix

from tests.conftest import CI
from tests.web.conftest import Browser, Server, ok, run_cli, start_server, stop_server

PARTIAL = ("duplicates", "operations_without_all_levels", "questionnaire_without_used_invitation",
           "used_invitation_without_questionnaire", "rows_without_audit", "audit_without_row")
USERS_MIX = {"patient": 2, "fhir": 2, "surgeon": 2, "staff": 1}
ANSWERS = {"eq5d3l_mo": "2", "eq5d3l_sc": "1", "eq5d3l_ua": "2", "eq5d3l_pd": "3", "eq5d3l_ad": "1", "eqvas": "65",
           **{f"odi_{k}": "1" for k in range(1, 11)}, "nrs_back": "4", "nrs_leg": "2", "action": "submit"}


@dataclass
class Registry:
    home: Path
    url: str
    prep: Prepared
    tag: str
    twice: dict[str, str]  # operation id -> link, kept for the double-submission test


def make_registry(home: Path, url: str, invitations: int) -> Registry:
    ok(run_cli(home, "db", "init", "--db", url, timeout=300))
    ok(run_cli(home, "synth", "--patients", "20", "--seed", "5", "--db", url, timeout=300))
    ok(run_cli(home, "site", "add", SITE[0], "--name", "Fault hospital", "--hospital", SITE[1], "--db", url))
    ok(run_cli(home, "user", "add", USERS[0][0], "--role", "surgeon", "--site", SITE[0], "--db", url,
               SPINEREG_PASSWORD=BENCH_PASSWORD))
    tag = f"t{os.getpid() % 10000}"
    prep = prepare_mix(home, url, invitations, tag, timeout=300)
    ops = sorted(prep.links)
    twice = {op: prep.links[op] for op in ops[:4]}
    rest = Prepared({op: prep.links[op] for op in ops[4:]}, prep.patients, prep.fhir_token, prep.seconds)
    return Registry(home, url, rest, tag, twice)


def wait_replacement(master: int, before: list[int], timeout: float = 30) -> int | None:
    """The pid of a worker the master started after ``before`` (None if none appeared within the timeout)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        new = set(children(master)) - set(before)
        if new:
            return new.pop()
        time.sleep(0.1)
    return None


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return out


class Load:
    """The mixed workload in a thread: stop() ends it; hits are the requests made."""

    def __init__(self, server: Server, reg: Registry, links: dict[str, str], seconds: float = 60) -> None:
        cookie = login(server.base, USERS[0][0])
        prep = Prepared(links, reg.prep.patients, reg.prep.fhir_token, 0)
        self.mix = Mix(server.base, prep, {"surgeon": cookie, "staff": cookie}, think=0.05,
                       deadline=time.monotonic() + seconds, max_requests=5000, timeout=20)
        self.thread = threading.Thread(target=self.mix.run, args=(USERS_MIX,), daemon=True)
        self.thread.start()

    def wait_writes(self, n: int, since: float, timeout: float = 40) -> None:
        """Until ``n`` writes, of every kind, were acknowledged by requests that started after ``since`` (or the
        timeout)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            done = [h.write[0] for h in list(self.mix.hits) if h.write is not None and h.start > since]
            if len(done) >= n and set(done) == {"questionnaire", "fhir", "operation"}:
                return
            time.sleep(0.2)

    def stop(self) -> list[Hit]:
        self.mix.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive()
        return list(self.mix.hits)


def assert_whole(found: dict[str, object]) -> None:
    assert found["lost"] == [], found["lost"]
    for key in PARTIAL:
        assert found[key] == [], (key, found[key])


def acked(hits: list[Hit], before: float = float("inf")) -> list[tuple[str, str]]:
    """The writes acknowledged by answers to requests that ended before ``before`` (monotonic s)."""
    return [h.write for h in hits if h.write is not None and h.start + h.ms / 1000 < before]


def split(links: dict[str, str], n: int) -> list[dict[str, str]]:
    ops = sorted(links)
    return [{op: links[op] for op in ops[i::n]} for i in range(n)]


@pytest.fixture(scope="module")
def sqlite_registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    home = tmp_path_factory.mktemp("faults")
    return make_registry(home, f"sqlite:///{home / 'registry.sqlite3'}", 40)


def serve(reg: Registry) -> Server:
    return start_server(reg.home, reg.url, "--workers", "2")


def test_kill_a_worker_then_the_whole_server(sqlite_registry: Registry) -> None:
    reg = sqlite_registry
    links = split(reg.prep.links, 2)[0]
    server = serve(reg)
    try:
        load = Load(server, reg, links)
        load.wait_writes(4, 0)
        workers = children(server.proc.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        first_kill = time.monotonic()
        replacement = wait_replacement(server.proc.pid, workers)
        replaced = time.monotonic()
        load.wait_writes(4, replaced)
        os.killpg(server.proc.pid, signal.SIGKILL)  # the master and every worker at once
        second_kill = time.monotonic()
        server.proc.wait(10)
        time.sleep(0.5)
        hits = load.stop()
    finally:
        stop_server(server)
    before_first = acked(hits, first_kill)
    between = acked(hits, second_kill)[len(before_first):]
    assert len(before_first) >= 4 and len(between) >= 4, (len(before_first), len(between))
    assert {k for k, _ in before_first} == {"questionnaire", "fhir", "operation"}
    found = check_writes(reg.url, acked(hits), reg.tag)
    assert_whole(found)
    # the master started a replacement worker, and the server answered after that, before the second kill
    assert replacement is not None
    assert any(h.good for h in hits if replaced < h.start < second_kill)
    with sqlite3.connect(reg.url.removeprefix("sqlite:///")) as con:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def submit_twice(server: Server, link: str) -> list[int]:
    """Open the link in two browsers, then POST the answers from both at the same moment."""
    browsers = [Browser(server.base) for _ in range(2)]
    tokens = [b.csrf(b.get(link)) for b in browsers]
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def post(b: Browser, token: str) -> None:
        barrier.wait()
        resp = b.request(link, {"csrfmiddlewaretoken": token, **ANSWERS})
        statuses.append(resp.status)
        assert "Traceback" not in resp.body

    threads = [threading.Thread(target=post, args=(b, t)) for b, t in zip(browsers, tokens, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return sorted(statuses)


def questionnaires(reg: Registry, op: str) -> int:
    with sqlite3.connect(f"file:{reg.url.removeprefix('sqlite:///')}?mode=ro", uri=True) as con:
        return int(con.execute("SELECT COUNT(*) FROM spinereg_proms WHERE operation_id = ? AND prom_id LIKE 'q-%'",
                               (op,)).fetchone()[0])


def test_the_same_questionnaire_twice_at_once_is_stored_once(sqlite_registry: Registry) -> None:
    reg = sqlite_registry
    server = serve(reg)
    try:
        for link in reg.twice.values():
            assert submit_twice(server, link) == [200, 410]
    finally:
        stop_server(server)
    assert {op: questionnaires(reg, op) for op in reg.twice} == dict.fromkeys(reg.twice, 1)
    assert_whole(check_writes(reg.url, [("questionnaire", op) for op in reg.twice], reg.tag))


def test_backup_under_load_restores_a_consistent_registry(sqlite_registry: Registry, tmp_path: Path) -> None:
    reg = sqlite_registry
    links = split(reg.prep.links, 2)[1]
    server = serve(reg)
    try:
        load = Load(server, reg, links)
        load.wait_writes(4, 0)
        began = time.monotonic()
        done = ok(run_cli(reg.home, "db", "backup", str(tmp_path / "backup.sqlite3"), "--db", reg.url))
        ended = time.monotonic()
        time.sleep(2)
        hits = load.stop()
    finally:
        stop_server(server)
    assert "backup of" in done.stdout
    during = [h for h in hits if began < h.start < ended and h.write is not None]
    restored = f"sqlite:///{tmp_path / 'restored.sqlite3'}"
    ok(run_cli(reg.home, "db", "restore", str(tmp_path / "backup.sqlite3"), "--db", restored))
    found = check_writes(restored, acked(hits, began), reg.tag)
    assert_whole(found)  # everything acknowledged before the backup began is in it, and every row has its audit
    live = check_writes(reg.url, acked(hits), reg.tag)
    assert_whole(live)
    for kind in ("questionnaire", "fhir", "operation"):
        assert found["stored"][kind] <= live["stored"][kind]
    assert sum(live["stored"].values()) > sum(found["stored"].values()) or not during

    def trail(url: str) -> list[tuple[object, ...]]:
        with sqlite3.connect(f"file:{url.removeprefix('sqlite:///')}?mode=ro", uri=True) as con:
            return con.execute("SELECT id, actor, action, entity, record_key, changes FROM spinereg_audit "
                               "ORDER BY id").fetchall()

    mine, theirs = trail(restored), trail(reg.url)
    assert mine == theirs[:len(mine)] and len(theirs) > len(mine)


# -- PostgreSQL ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, Registry]]:
    from tests.registry.conftest import PgCluster

    try:
        cluster = PgCluster()
    except Exception as exc:  # no PostgreSQL binaries, or they would not start
        msg = f"cannot start a throwaway PostgreSQL cluster: {exc}"
        if CI:
            pytest.fail(msg + " (CI=true: PostgreSQL is required)")
        pytest.skip(msg)
    try:
        home = tmp_path_factory.mktemp("faults-pg")
        yield cluster, make_registry(home, cluster.create_database(), 16)
    finally:
        cluster.stop()


def test_postgresql_restart_mid_load(pg: tuple[object, Registry]) -> None:
    from tests.registry.conftest import PgCluster, _as_postgres

    cluster, reg = pg
    assert isinstance(cluster, PgCluster)
    server = serve(reg)
    try:
        load = Load(server, reg, reg.prep.links)
        load.wait_writes(4, 0)
        down = time.monotonic()
        subprocess.run(_as_postgres([str(cluster.bindir / "pg_ctl"), "-D", str(cluster.data), "-m", "fast", "-w",
                                     "-l", str(cluster.root / "log"), "restart"]), check=True, timeout=120,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        up = time.monotonic()
        load.wait_writes(6, up + 1)
        hits = load.stop()
        # the same server, never restarted, answers every kind of request again
        assert server.proc.poll() is None
        for link in list(reg.twice.values())[:2]:
            assert submit_twice(server, link) == [200, 410]
    finally:
        stop_server(server)
    after = [h for h in hits if h.start > up + 1]
    assert len(after) >= 10 and all(h.good for h in after), [(h.kind, h.status, h.note) for h in after if not h.good]
    bad = [h for h in hits if not h.good]
    in_flight = [h for h in bad if h.start < up + 1 and h.start + h.ms / 1000 > down - 1]
    for h in bad:  # no traceback, no driver's message in any answer
        assert "Traceback" not in h.body and "File \"" not in h.body, h.body[:500]
    for h in bad:  # clean errors, and only for requests in flight during the restart: a plain error page (5xx;
        # 400 when the session could not be saved: Django's SessionInterrupted)
        if h.kind != "fhir":
            assert h.status >= 400 and h in in_flight, (h.kind, h.status, h.note, h.body[:300])
            assert h.status >= 500 or "<title>Bad Request (400)</title>" in h.body, h.body[:300]
            assert "psycopg" not in h.body and "sock" not in h.body, h.body[:500]
    assert_whole(check_writes(reg.url, acked(hits), reg.tag))
    # the FHIR API: a request caught in the outage gets 503 with an OperationOutcome ("transient", no driver
    # message), never a 4xx that tells the client not to retry; two first writes at once both find the dataset
    unclean = [h for h in bad if h.kind == "fhir" and (h.status < 500 or h not in in_flight
                                                       or '"resourceType": "OperationOutcome"' not in h.body
                                                       or "psycopg" in h.body or "sock" in h.body)]
    assert not unclean, "FHIR API during a database outage: " + "; ".join(
        sorted({f"HTTP {h.status} {h.body.strip()[:90]!r}" for h in unclean}))
