"""Web registry speed: the staff list and search pages on a large synthetic registry.

Builds (once; cached under ``--cache``, default ``benchmarks/.cache/``, git-ignored) a
synthetic SQLite registry of ``--patients`` patients (default 1,000,000) with
``spinereg db init`` + ``spinereg synth`` (generation and the audited import in one
process: the fastest supported path), a site (the largest synthetic hospital,
SYN-H01) and two users: a site surgeon and a national analyst.  A later run reuses
the cached registry and upgrades its schema with ``spinereg db init`` (so new
indexes are applied to it).

Then starts ``spinereg serve`` on 127.0.0.1 (a free port, ``--workers 2``), logs both
users in, and for each page and role issues ``--requests`` GETs (default 200), first
one after another, then from ``--clients`` concurrent clients (default 4), and
prints n, errors, p50, p95, p99 and max latency in ms per page, role and mode:

* home: the first page of the user's patients (keyset pagination, no COUNT);
* home, deep: a keyset page far into the list (``?after=`` a pseudonym ~60 % in);
* search hit / miss: a pseudonym prefix that matches (a few patients) / matches none;
* operations: the first page of the site's operations, newest first;
* operations, deep: a keyset page far back in time;
* patient: one patient's page;
* healthz: the health check (no login, no list): the baseline of the server and machine.

Target (issue 12, point 11; issue 15, point 5): p95 <= 200 ms for every list and
search page.  Measured at 1,000,000 patients on the development machine (2 vCPUs,
load average ~1.9 from other jobs): worst p95 over every page, role and mode 47 ms (4
concurrent clients on 2 workers; one client after another at most 29 ms); workers' peak
RSS 284 MB.  On the same machine under heavy load (load average ~8) the p95 rose to
148 ms sequential and 308 ms with 4 clients queueing on 2 workers, with the health check
alone at 167 ms: the load, not the queries.  Building the registry took 592 s (peak
3.3 GB), once.
Every request has a timeout, and the whole run a time limit
(``--time-limit``); the server is stopped at the end in any case.

Run: .venv/bin/python benchmarks/bench_web.py [--patients N] [--requests R] [--clients C] [--cache DIR]

Mixed workload (issue 15, point 2): ``--mix [--db sqlite|postgresql] [--users U] [--duration S] [--think T]``
builds (once) a 10,000-patient registry, adds ``--invitations`` patients with an operation and an invitation each
(``send_invitations``, the function behind ``spinereg followup send``), starts ``spinereg serve --workers 4``
on 127.0.0.1 and runs ``U`` users at once (patients answering their links, FHIR clients posting
QuestionnaireResponses, surgeons saving operation forms, staff opening list and search pages; see :class:`Mix`)
for ``S`` seconds.  It prints requests/s, p50/p95/p99 per kind and overall, errors ("database is locked"
counted apart, in answers and in the server's log), and the writes: every acknowledged write is looked up in
the database afterwards (lost, duplicates, partial records: :func:`check_writes`).  Measured 2026-12-05 (2 vCPUs,
load average 1.9-2.9 before), ``--invitations 2500``: SQLite, 32 users, 5,867 requests, 46.4/s, p95 54 ms, 0 errors,
0 "database is locked", 2,838 writes acknowledged, 0 lost; PostgreSQL, 50 users, 9,037 requests, 73.8/s, p95 115 ms
(target 300 ms: met), 0 errors, 4,530 acknowledged, 0 lost.  (Before the row-wise single-record check, the same day:
p95 5.1 s.)  See
docs/web.md, "At scale".
"""

from __future__ import annotations

import argparse
import http.client
import http.cookiejar
import json
import os
import re
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "bench-web-passphrase-2026"
SITE = ("bench-h01", "SYN-H01")  # site code, hospital (the largest synthetic hospital; all its departments)
USERS = (("bench-surgeon", "surgeon", SITE[0]), ("bench-analyst", "analyst", None))


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPINEREG_", "DJANGO_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["SPINEREG_HOME"] = str(home)
    env.update(extra)
    return env


def _cli(home: Path, *args: str, timeout: float, **extra: str) -> tuple[float, float]:
    """Run ``spinereg ARGS``; return (seconds, peak RSS in MB).  Exits on failure or timeout."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "spinereg", *args], env=_env(home, **extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        out, err = proc.communicate()
    finally:
        timer.cancel()
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"spinereg {' '.join(args)} failed (exit {proc.returncode}"
                         f"{', killed after the time limit' if seconds >= timeout else ''}):\n{err.decode()}"
                         f"{out.decode()}")
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def build(cache: Path, patients: int, seed: int, rebuild: bool, timeout: float,
          pg_url: str | None = None) -> tuple[Path, Path, dict[str, Any]]:
    """The cached registry (built when missing): (home, database file, build facts).  ``pg_url``: build it in that
    PostgreSQL database instead (kept with its cluster under the cache)."""
    where = cache / (f"sqlite-{patients}p-seed{seed}" if pg_url is None else f"pg-{patients}p-seed{seed}")
    home, db_file, marker = where / "home", where / "registry.sqlite3", where / "built.json"
    url = f"sqlite:///{db_file}" if pg_url is None else pg_url
    if marker.exists() and (db_file.exists() or pg_url is not None) and not rebuild:
        cached: dict[str, Any] = dict(json.loads(marker.read_text()))
        seconds, _ = _cli(home, "db", "init", "--db", url, timeout=timeout)  # apply new migrations (indexes)
        cached["db_init_reused_s"] = seconds
        return home, db_file, cached
    if where.exists():
        shutil.rmtree(where)
    home.mkdir(parents=True)
    facts: dict[str, Any] = {"patients": patients, "seed": seed}
    facts["db_init_s"], _ = _cli(home, "db", "init", "--db", url, timeout=timeout)
    facts["synth_s"], facts["synth_max_rss_mb"] = _cli(home, "synth", "--patients", str(patients), "--seed",
                                                       str(seed), "--db", url, timeout=timeout)
    _cli(home, "db", "init", "--db", url, timeout=timeout)  # (a no-op unless the sources changed meanwhile)
    _cli(home, "site", "add", SITE[0], "--name", "Bench hospital 1", "--hospital", SITE[1], "--db", url,
         timeout=timeout)
    for name, role, site in USERS:
        _cli(home, "user", "add", name, "--role", role, *(["--site", site] if site else []), "--db", url,
             timeout=timeout, SPINEREG_PASSWORD=PASSWORD)
    facts["db_bytes"] = db_file.stat().st_size if pg_url is None else 0
    marker.write_text(json.dumps(facts))
    return home, db_file, facts


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    base: str
    proc: subprocess.Popen[bytes]


def start_server(home: Path, url: str, workers: int, log: Path) -> Server:
    port = _free_port()
    with log.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "spinereg", "serve", "--db", url,
                                 "--port", str(port), "--workers", str(workers)], env=_env(home), stdout=fh,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", proc)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"spinereg serve exited: {log.read_text()}")
        try:
            with urllib.request.urlopen(server.base + "/healthz", timeout=5) as resp:
                if resp.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    stop_server(server)
    raise SystemExit(f"spinereg serve did not answer within 120 s: {log.read_text()}")


def stop_server(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)  # gunicorn's master: it stops its workers
        try:
            server.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait(timeout=10)


def worker_rss_mb(master: int) -> list[float]:
    """Peak RSS (VmHWM) of the gunicorn master's worker processes."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) != master:
                continue
            status = (stat.parent / "status").read_text()
        except (OSError, IndexError, ValueError):
            continue
        m = re.search(r"VmHWM:\s+(\d+) kB", status)
        if m:
            out.append(int(m.group(1)) / 1024)
    return out


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def login(base: str, username: str) -> str:
    """Log in; return the Cookie header of the session."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(_NoRedirect(), urllib.request.HTTPCookieProcessor(jar))
    with opener.open(base + "/accounts/login/", timeout=30) as resp:
        page = resp.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    if token is None:
        raise SystemExit("no CSRF token on the login page")
    body = urllib.parse.urlencode({"csrfmiddlewaretoken": token.group(1), "username": username,
                                   "password": PASSWORD, "otp_token": ""}).encode()
    req = urllib.request.Request(base + "/accounts/login/", data=body, headers={"Referer": base + "/accounts/login/"})
    try:
        opener.open(req, timeout=30)
    except urllib.error.HTTPError as exc:
        if exc.code != 302:
            raise SystemExit(f"login of {username} failed: HTTP {exc.code}") from None
    cookies = {c.name: c.value for c in jar}
    if "sessionid" not in cookies:
        raise SystemExit(f"login of {username} failed: no session")
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def fetch(base: str, path: str, cookie: str, timeout: float) -> tuple[float, bool]:
    """GET ``path``: (milliseconds, ok: 200 with a table in it)."""
    req = urllib.request.Request(base + path, headers={"Cookie": cookie, "Accept-Language": "en"})
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
            good = resp.status == 200 and (b"<table" in body or path == "/healthz")
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        good = False
    return (time.perf_counter() - t0) * 1000, good


def pages(db_file: Path, national: bool) -> dict[str, str]:
    """The pages measured for a role, with keys found in the registry file itself (60 % into each list)."""
    con = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
    try:
        if national:
            (n,) = con.execute("SELECT COUNT(*) FROM spinereg_patients").fetchone()
            (pid,) = con.execute("SELECT patient_id FROM spinereg_patients ORDER BY patient_id LIMIT 1 OFFSET ?",
                                 (int(n * 0.6),)).fetchone()
            (m,) = con.execute("SELECT COUNT(*) FROM spinereg_operations").fetchone()
            (oid,) = con.execute("SELECT operation_id FROM spinereg_operations ORDER BY date DESC, "
                                 "operation_id DESC LIMIT 1 OFFSET ?", (int(m * 0.6),)).fetchone()
        else:
            (n,) = con.execute("SELECT COUNT(DISTINCT patient_id) FROM spinereg_operations WHERE hospital = ?",
                               (SITE[1],)).fetchone()
            (pid,) = con.execute("SELECT DISTINCT patient_id FROM spinereg_operations WHERE hospital = ? "
                                 "ORDER BY patient_id LIMIT 1 OFFSET ?", (SITE[1], int(n * 0.6))).fetchone()
            (m,) = con.execute("SELECT COUNT(*) FROM spinereg_operations WHERE hospital = ?",
                               (SITE[1],)).fetchone()
            (oid,) = con.execute("SELECT operation_id FROM spinereg_operations WHERE hospital = ? ORDER BY "
                                 "date DESC, operation_id DESC LIMIT 1 OFFSET ?", (SITE[1], int(m * 0.6))).fetchone()
    finally:
        con.close()
    q = urllib.parse.quote
    return {"healthz (baseline)": "/healthz", "home": "/", "home, deep page": f"/?after={q(pid)}",
            "search, hit": f"/search/?q={q(pid[:-2])}",
            "search, miss": f"/search/?q={q(pid[:-2] + 'x')}", "operations": "/operations/",
            "operations, deep page": f"/operations/?after={q(oid)}", "patient": f"/patients/{q(pid)}/"}


def _pct(sorted_ms: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    k = max(1, -(-int(p * len(sorted_ms) * 1000) // 100_000))
    return sorted_ms[min(k, len(sorted_ms)) - 1]


def measure(run: Callable[[], tuple[float, bool]], n: int, clients: int, deadline: float) -> tuple[list[float], int]:
    """``n`` requests, ``clients`` at a time (1: one after another), none started after ``deadline``."""
    def one(_i: int) -> tuple[float, bool] | None:
        return run() if time.monotonic() < deadline else None

    if clients == 1:
        results = [one(i) for i in range(n)]
    else:
        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(one, range(n)))
    done = [r for r in results if r is not None]
    return sorted(ms for ms, _ok in done), sum(1 for _ms, good in done if not good)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--patients", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=2018)
    ap.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / ".cache",
                    help="where the registry is built once and kept (default benchmarks/.cache, git-ignored)")
    ap.add_argument("--rebuild", action="store_true", help="build the registry again even when cached")
    ap.add_argument("--build-only", action="store_true", help="build (or upgrade) the cached registry and stop")
    ap.add_argument("--build-timeout", type=float, default=1800, help="seconds for each build step")
    ap.add_argument("--requests", type=int, default=200, help="GETs per page, role and mode")
    ap.add_argument("--clients", type=int, default=4, help="concurrent clients of the concurrent mode")
    ap.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    ap.add_argument("--timeout", type=float, default=30, help="seconds per request")
    ap.add_argument("--time-limit", type=float, default=780,
                    help="seconds for the measurements; no request starts after it")
    mix = ap.add_argument_group("mixed workload (--mix): patients, FHIR clients, surgeons and staff at once")
    mix.add_argument("--mix", action="store_true", help="run the mixed workload instead of the page timings")
    mix.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite",
                     help="the registry's database (postgresql: a cluster of its own under --cache)")
    mix.add_argument("--users", type=int, default=32, help="concurrent users (40%% patients, 20%% FHIR clients, "
                     "20%% surgeons, 20%% staff)")
    mix.add_argument("--duration", type=float, default=120, help="seconds of load")
    mix.add_argument("--think", type=float, default=1.0, help="mean think time between a user's actions, s")
    mix.add_argument("--invitations", type=int, default=800, help="patients invited (one link each)")
    mix.add_argument("--max-requests", type=int, default=100_000, help="requests at most")
    a = ap.parse_args()
    if a.mix:
        if "--patients" not in sys.argv:
            a.patients = 10_000
        if "--workers" not in sys.argv:
            a.workers = 4
        raise SystemExit(mix_main(a))
    t0 = time.perf_counter()
    home, db_file, facts = build(a.cache, a.patients, a.seed, a.rebuild, a.build_timeout)
    if "synth_s" in facts:
        print(f"registry: {a.patients:,} synthetic patients (seed {a.seed}), SQLite {facts['db_bytes'] / 1e9:.2f} GB;"
              f" built by spinereg synth in {facts['synth_s']:.0f} s (peak memory {facts['synth_max_rss_mb']:,.0f} MB)"
              + (f"; reused from {db_file.parent} (db init {facts['db_init_reused_s']:.1f} s)"
                 if "db_init_reused_s" in facts else ""))
    if a.build_only:
        return
    log = db_file.parent / "serve.log"
    load_before = os.getloadavg()
    server = start_server(home, f"sqlite:///{db_file}", a.workers, log)
    deadline = time.monotonic() + a.time_limit
    print(f"\nGET latency, ms (client side, loopback; spinereg serve --workers {a.workers}; site = a surgeon of "
          f"{SITE[1]}, national = an analyst); target p95 <= 200 ms")
    print(f"{'page':<22} {'role':<9} {'mode':<11} {'n':>5} {'err':>4} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7}",
          flush=True)
    worst = 0.0
    try:
        for user, _role, site in USERS:
            role = "site" if site is not None else "national"
            cookie = login(server.base, user)
            for name, path in pages(db_file, site is None).items():
                _ms, good = fetch(server.base, path, cookie, a.timeout)  # warm up (and check) once
                if not good:
                    raise SystemExit(f"{path} as {user}: not a 200 page with a table")
                for clients in (1, a.clients):
                    lat, errors = measure(partial(fetch, server.base, path, cookie, a.timeout),
                                          a.requests, clients, deadline)
                    label = "sequential" if clients == 1 else f"{clients} clients"
                    if not lat:
                        print(f"{name:<22} {role:<9} {label:<11} {0:>5} {errors:>4}  (time limit reached)")
                        continue
                    p95 = _pct(lat, 95)
                    worst = max(worst, p95) if not name.startswith("healthz") else worst
                    print(f"{name:<22} {role:<9} {label:<11} {len(lat):>5} {errors:>4} {_pct(lat, 50):>7.1f} "
                          f"{p95:>7.1f} {_pct(lat, 99):>7.1f} {lat[-1]:>7.1f}", flush=True)
        rss = worker_rss_mb(server.proc.pid)
    finally:
        stop_server(server)
    print(f"worst p95 of the staff pages {worst:.1f} ms [target <= 200 ms]; server workers' peak RSS "
          + ", ".join(f"{r:,.0f}" for r in rss) + f" MB; total run {time.perf_counter() - t0:.0f} s")
    print(f"machine: {os.cpu_count()} CPUs, load average {load_before[0]:.1f} before and {os.getloadavg()[0]:.1f} "
          "after the measurements (other processes share the CPUs: compare with the healthz baseline, a page "
          "without a list)")


# -- the mixed workload (issue 15, point 2) --------------------------------------------------------------------
#: Builds the mix's own records in a registry (standalone settings, its own process): ``n`` patients, each with an
#: operation at the bench site 70 days ago (the 3-month window is open today), and one invitation each from
#: ``send_invitations`` (the function behind ``spinereg followup send``); prints the links (this process made the
#: deliveries, so ``list_invitations`` knows them) with their operation ids, as JSON.
_PREPARE = r'''
import json, sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from django.db import transaction
from spinereg.registry import RegistryWriter, open_registry
from spinereg.followup.service import list_invitations, send_invitations
url, outbox, n, tag, hospital = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
alias = open_registry(url)
today = datetime.now(UTC).date()
w = RegistryWriter(alias, "bench mix", who="bench-mix")
ops = set()
for i in range(n):
    pid = f"bm-{tag}-{i:05d}"
    with transaction.atomic(using=alias):
        w.create("patients", {"patient_id": pid, "sex": "female", "birth_date": "1950-01-01"})
        w.create("operations", {"operation_id": "op-" + pid, "patient_id": pid, "hospital": hospital,
                                "date": (today - timedelta(days=70)).isoformat(),
                                "procedure_category": "vertebroplasty"})
    ops.add("op-" + pid)
send_invitations(alias, today=today, outbox=Path(outbox), base_url="http://bench.invalid")
rows = list_invitations(alias)
links = {op: link.removeprefix("http://bench.invalid") for op, link in zip(rows["operation_id"], rows["link"])
         if op in ops and link.startswith("http://bench.invalid/q/")}
print(json.dumps(links))
'''

ANSWERS = {"eq5d3l_mo": "2", "eq5d3l_sc": "1", "eq5d3l_ua": "2", "eq5d3l_pd": "3", "eq5d3l_ad": "1", "eqvas": "65",
           **{f"odi_{k}": "1" for k in range(1, 11)}, "nrs_back": "4", "nrs_leg": "2", "action": "submit"}
OPERATION = {"date": "2024-03-05", "procedure_category": "vertebroplasty", "indication": "osteoporotic_vcf",
             "diagnosis_codes": "M800", "asa_class": "2", "anaesthesia": "local", "procedure_codes": "KNAG40",
             "levels-TOTAL_FORMS": "3", "levels-INITIAL_FORMS": "0", "levels-MIN_NUM_FORMS": "0",
             "levels-MAX_NUM_FORMS": "1000", "levels-0-level": "L1", "levels-0-cement_volume_ml": "3.5",
             "levels-1-level": "L2", "levels-1-cement_volume_ml": "4"}
LEVELS_PER_OPERATION = 2
KINDS = ("patient", "fhir", "surgeon", "staff")


@dataclass
class Prepared:
    """What a mixed run needs: the links (operation id -> /q/<token>/), the bench patients, a FHIR token."""

    links: dict[str, str]
    patients: list[str]
    fhir_token: str
    seconds: float


def prepare_mix(home: Path, url: str, invitations: int, tag: str, timeout: float = 1800) -> Prepared:
    """Add ``invitations`` patients with an operation and an invitation each; create a FHIR token of the surgeon."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _PREPARE, url, str(home / "outbox"), str(invitations), tag,
                           SITE[1]], env=_env(home), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"preparing the mix failed:\n{proc.stderr}{proc.stdout}")
    links: dict[str, str] = json.loads(proc.stdout.strip().splitlines()[-1])
    if len(links) != invitations:
        raise SystemExit(f"expected {invitations} new invitation links, got {len(links)}")
    tok = subprocess.run([sys.executable, "-m", "spinereg", "token", "create", USERS[0][0], "--label", f"bench {tag}",
                          "--db", url], env=_env(home), capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL, check=False)
    if tok.returncode != 0:
        raise SystemExit(f"spinereg token create failed: {tok.stderr}")
    patients = sorted(op.removeprefix("op-") for op in links)
    return Prepared(links, patients, tok.stdout.split()[-1], time.perf_counter() - t0)


@dataclass
class Hit:
    """One request of the mix: its kind and step, start (monotonic s), latency (ms), status (0: no answer),
    whether it was the expected answer, the write it acknowledged (``(entity, key)``) and an error note."""

    kind: str
    step: str
    start: float
    ms: float
    status: int
    good: bool
    write: tuple[str, str] | None = None
    note: str = ""
    body: str = ""  # the answer's beginning, when it was not the expected one


def _http(base: str, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None,
          source: str | None = None, timeout: float = 30) -> tuple[int, dict[str, str], str, float]:
    """One request on a fresh connection (``source``: the client's loopback address): status, headers, body, ms.
    Status 0 with the exception's text as the body when no answer came."""
    parsed = urllib.parse.urlsplit(base)
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=timeout,
                                      source_address=(source, 0) if source else None)
    try:
        conn.request(method, path, body=body, headers={"Accept-Language": "en", "Host": "127.0.0.1",
                                                       **(headers or {})})
        resp = conn.getresponse()
        text = resp.read().decode(errors="replace")
        out = resp.status, {k.lower(): v for k, v in resp.getheaders() if k.lower() != "set-cookie"}, text
        cookies = [v for k, v in resp.getheaders() if k.lower() == "set-cookie"]
        out[1]["set-cookie"] = "\n".join(cookies)
    except (OSError, http.client.HTTPException) as exc:
        out = 0, {}, f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    return out[0], out[1], out[2], (time.perf_counter() - t0) * 1000


def _cookie(set_cookie: str, name: str) -> str | None:
    m = re.search(rf"(?:^|\n){name}=([^;]+)", set_cookie)
    return m.group(1) if m else None


def _csrf(page: str) -> str | None:
    m = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    return m.group(1) if m else None


def _form(data: dict[str, str]) -> bytes:
    return urllib.parse.urlencode(data).encode()


class Mix:
    """Concurrent users of four kinds, each a thread that acts, then thinks (exponential, mean ``think`` s):

    * patient: opens a link of their own (a fresh one each time; from a loopback address of their own, so the
      page's per-address rate limit does not turn a benchmark into a test of it), then submits the answers;
    * fhir: POSTs a QuestionnaireResponse (NRS back) for a bench patient with the surgeon's token;
    * surgeon: opens a bench patient's new-operation form and saves an operation with two levels;
    * staff: opens the home list, a search, the operations list or a patient's page.

    A write counts as acknowledged on its expected answer (200 thank-you page; 201 with Location; 302 to the new
    operation).  No request starts after ``deadline`` or the ``stop`` event, nor beyond ``max_requests``."""

    def __init__(self, base: str, prepared: Prepared, cookies: dict[str, str], *, think: float, deadline: float,
                 max_requests: int, timeout: float = 30, seed: int = 1) -> None:
        import random

        self.base, self.prep, self.cookies = base, prepared, cookies
        self.think, self.deadline, self.timeout = think, deadline, timeout
        self.max_requests = max_requests
        self.hits: list[Hit] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.unused = list(prepared.links.items())
        random.Random(seed).shuffle(self.unused)
        self.seed = seed

    def _go(self) -> bool:
        return not self.stop.is_set() and time.monotonic() < self.deadline and len(self.hits) < self.max_requests

    def _record(self, hit: Hit) -> Hit:
        with self.lock:
            self.hits.append(hit)
        return hit

    def _req(self, kind: str, step: str, method: str, path: str, expect: int, **kw: Any) -> tuple[Hit, dict[str, str],
                                                                                                   str]:
        start = time.monotonic()
        status, headers, body, ms = _http(self.base, method, path, timeout=self.timeout, **kw)
        note = "" if status == expect else (body[:200] if status == 0 else f"HTTP {status}")
        if "database is locked" in body:
            note = "database is locked"
        return self._record(Hit(kind, step, start, ms, status, status == expect, note=note,
                                body="" if status == expect else body[:3000])), headers, body

    def patient(self, n: int) -> None:
        while self._go():
            with self.lock:
                if not self.unused:
                    return
                op, link = self.unused.pop()
                # each link is another patient, on a device of their own (the patient pages limit requests
                # per address): a loopback address per link
                k = len(self.unused)
            source = f"127.{1 + k // 60000}.{(k // 250) % 240 + 1}.{k % 250 + 1}"
            hit, headers, page = self._req("patient", "open", "GET", link, 200, source=source)
            token, cookie = _csrf(page), _cookie(headers.get("set-cookie", ""), "csrftoken")
            if not hit.good or token is None or cookie is None or not self._go():
                continue
            hit, _h, body = self._req("patient", "submit", "POST", link, 200, source=source,
                                      body=_form({**ANSWERS, "csrfmiddlewaretoken": token}),
                                      headers={"Cookie": f"csrftoken={cookie}",
                                               "Content-Type": "application/x-www-form-urlencoded",
                                               "Referer": self.base + link})
            if hit.good and "answers were received" in body:
                hit.write = ("questionnaire", op)
            elif hit.good:
                hit.good, hit.note = False, "200 without the thank-you page"
            self._pause()

    def fhir(self, n: int) -> None:
        import random

        rnd = random.Random(self.seed * 1000 + n)
        today = time.strftime("%Y-%m-%d", time.gmtime())
        while self._go():
            pid = rnd.choice(self.prep.patients)
            doc = {"resourceType": "QuestionnaireResponse", "status": "completed",
                   "questionnaire": "Questionnaire/nrs-back",
                   "subject": {"reference": f"Patient/{pid}"}, "authored": today,
                   "item": [{"linkId": "nrs_back", "answer": [{"valueCoding": {"code": str(rnd.randint(0, 10))}}]}]}
            hit, headers, _body = self._req("fhir", "post QuestionnaireResponse", "POST", "/fhir/QuestionnaireResponse",
                                            201, body=json.dumps(doc).encode(),
                                            headers={"Authorization": f"Bearer {self.prep.fhir_token}",
                                                     "Content-Type": "application/fhir+json"})
            location = headers.get("location", "")
            if hit.good and "/QuestionnaireResponse/" in location:
                rid = location.rsplit("/", 1)[1]
                hit.write = ("fhir", rid.rsplit(".", 1)[0].replace("..", ":"))
            elif hit.good:
                hit.good, hit.note = False, "201 without a Location"
            self._pause()

    def surgeon(self, n: int) -> None:
        import random

        rnd = random.Random(self.seed * 2000 + n)
        cookie = self.cookies["surgeon"]
        while self._go():
            path = f"/clinical/patients/{rnd.choice(self.prep.patients)}/operations/new/"
            hit, _h, page = self._req("surgeon", "open form", "GET", path, 200, headers={"Cookie": cookie})
            token = _csrf(page)
            if not hit.good or token is None or not self._go():
                continue
            hit, headers, _b = self._req("surgeon", "save operation", "POST", path, 302,
                                         body=_form({**OPERATION, "csrfmiddlewaretoken": token}),
                                         headers={"Cookie": cookie, "Referer": self.base + path,
                                                  "Content-Type": "application/x-www-form-urlencoded"})
            m = re.fullmatch(r"/operations/([^/]+)/", headers.get("location", ""))
            if hit.good and m:
                hit.write = ("operation", urllib.parse.unquote(m.group(1)))
            elif hit.good:
                hit.good, hit.note = False, "302 elsewhere than the new operation"
            self._pause()

    def staff(self, n: int) -> None:
        import random

        rnd = random.Random(self.seed * 3000 + n)
        cookie = self.cookies["staff"]
        while self._go():
            pid = rnd.choice(self.prep.patients)
            step, path = rnd.choice([("home", "/"), ("search", f"/search/?q={pid[:-2]}"),
                                     ("operations", "/operations/"), ("patient", f"/patients/{pid}/")])
            hit, _h, body = self._req("staff", step, "GET", path, 200, headers={"Cookie": cookie})
            if hit.good and "<table" not in body:
                hit.good, hit.note = False, "200 without a table"
            self._pause()

    def _pause(self) -> None:
        import random

        if self.think > 0:
            self.stop.wait(random.expovariate(1 / self.think))

    def run(self, users: dict[str, int]) -> list[Hit]:
        threads = [threading.Thread(target=getattr(self, kind), args=(n,), daemon=True)
                   for kind, count in users.items() for n in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(1.0, self.deadline - time.monotonic() + self.timeout + 5))
        return self.hits


def _connect(url: str) -> Any:
    if url.startswith("sqlite:///"):
        return sqlite3.connect(f"file:{url.removeprefix('sqlite:///')}?mode=ro", uri=True)
    import dj_database_url
    import psycopg

    cfg = dj_database_url.parse(url)
    return psycopg.connect(host=cfg["HOST"], port=cfg.get("PORT") or 5432, user=cfg["USER"], dbname=cfg["NAME"],
                           password=cfg.get("PASSWORD") or None)


def check_writes(url: str, acked: list[tuple[str, str]], tag: str) -> dict[str, Any]:
    """Count in the database what the mix wrote: acknowledged writes missing (lost), stored more than once
    (duplicates), and partial records (an operation without its levels, a questionnaire without its invitation
    marked used or the other way round, a row of the mix without its audit entry, or an audit entry of a create
    without its row).  ``tag``: the run's patients are ``bm-TAG-*``."""
    like = f"bm-{tag}-%"
    conn = _connect(url)
    try:
        def rows(sql: str, *params: str) -> list[tuple[Any, ...]]:
            cur = conn.cursor()
            cur.execute(sql if url.startswith("sqlite") else sql.replace("%", "%%").replace("?", "%s"), params)
            return list(cur.fetchall())

        q = dict(rows("SELECT operation_id, COUNT(*) FROM spinereg_proms WHERE prom_id LIKE 'q-%' "
                      "AND patient_id LIKE ? GROUP BY operation_id", like))
        used = {op for (op,) in rows("SELECT operation_id FROM spinereg_followup_invitation WHERE used_at IS NOT NULL "
                                     "AND operation_id LIKE ?", "op-" + like)}
        fhir = dict(rows("SELECT prom_id, COUNT(*) FROM spinereg_proms WHERE prom_id LIKE 'fhir-api:%' "
                         "AND patient_id LIKE ? GROUP BY prom_id", like))
        ops = dict(rows("SELECT o.operation_id, COUNT(t.level) FROM spinereg_operations o LEFT JOIN "
                        "spinereg_treated_levels t ON t.operation_id = o.operation_id WHERE o.operation_id "
                        "LIKE 'web-registry:%' AND o.patient_id LIKE ? GROUP BY o.operation_id", like))
        levels = {f"{o}/{lv}" for o, lv in rows("SELECT t.operation_id, t.level FROM spinereg_treated_levels t JOIN "
                                                  "spinereg_operations o ON o.operation_id = t.operation_id WHERE "
                                                  "o.patient_id LIKE ?", like)}
        proms = {p for (p,) in rows("SELECT prom_id FROM spinereg_proms WHERE patient_id LIKE ?", like)}
        audited = {(e, k) for e, k in rows("SELECT entity, record_key FROM spinereg_audit WHERE action = 'create' AND "
                                           "((entity = 'proms' AND (record_key LIKE 'q-%' OR record_key LIKE "
                                           "'fhir-api:%')) OR (entity IN ('operations', 'treated_levels') AND "
                                           "record_key LIKE 'web-registry:%'))")}
        every_row = ({("proms", p) for (p,) in rows("SELECT prom_id FROM spinereg_proms WHERE prom_id LIKE 'q-%' OR "
                                                   "prom_id LIKE 'fhir-api:%'")}
                     | {("operations", o) for (o,) in rows("SELECT operation_id FROM spinereg_operations WHERE "
                                                           "operation_id LIKE 'web-registry:%'")}
                     | {("treated_levels", f"{o}/{lv}") for o, lv in rows(
                         "SELECT operation_id, level FROM spinereg_treated_levels WHERE operation_id LIKE "
                         "'web-registry:%'")})
    finally:
        conn.close()
    lost = [(kind, key) for kind, key in acked
            if (kind == "questionnaire" and key not in q) or (kind == "fhir" and key not in fhir)
            or (kind == "operation" and key not in ops)]
    counts: dict[str, int] = {}
    for kind, _key in acked:
        counts[kind] = counts.get(kind, 0) + 1
    row_keys = ({("proms", p) for p in proms if p.startswith(("q-", "fhir-api:"))}
                | {("operations", o) for o in ops} | {("treated_levels", k) for k in levels})
    return {
        "acknowledged": counts,
        "lost": lost,
        "duplicates": sorted(k for k, n in {**q, **fhir}.items() if n > 1),
        "operations_without_all_levels": sorted(o for o, n in ops.items() if n != LEVELS_PER_OPERATION),
        "questionnaire_without_used_invitation": sorted(set(q) - used),
        "used_invitation_without_questionnaire": sorted(used - set(q)),
        "rows_without_audit": sorted(row_keys - audited),
        "audit_without_row": sorted(audited - every_row),
        "stored": {"questionnaire": sum(q.values()), "fhir": sum(fhir.values()), "operation": len(ops)},
    }


def _fresh_pg_database(url: str) -> None:
    """Drop and create the database of ``url`` (an incomplete build of the cached registry)."""
    import dj_database_url
    import psycopg

    cfg = dj_database_url.parse(url)
    with psycopg.connect(host=cfg["HOST"], port=cfg.get("PORT") or 5432, user=cfg["USER"], dbname="postgres",
                         autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{cfg["NAME"]}"')
        c.execute(f'CREATE DATABASE "{cfg["NAME"]}"')


def _summary(lat: list[float]) -> str:
    lat = sorted(lat)
    if not lat:
        return f"{'':>7} {'':>7} {'':>7} {'':>7}"
    return f"{_pct(lat, 50):>7.1f} {_pct(lat, 95):>7.1f} {_pct(lat, 99):>7.1f} {lat[-1]:>7.1f}"


def mix_main(a: argparse.Namespace) -> int:
    """The mixed workload on a running ``spinereg serve``: prints the figures; exit status 1 on a missed target."""
    from contextlib import ExitStack

    t0 = time.perf_counter()
    with ExitStack() as stack:
        pg_url = None
        if a.db == "postgresql":
            from benchmarks._pg import postgres

            pg_url = stack.enter_context(postgres(a.cache / "pg-mix-cluster", f"mix_{a.patients}_{a.seed}"))
            if not (a.cache / f"pg-{a.patients}p-seed{a.seed}" / "built.json").exists() or a.rebuild:
                _fresh_pg_database(pg_url)
        home, db_file, facts = build(a.cache, a.patients, a.seed, a.rebuild, a.build_timeout, pg_url)
        url = pg_url or f"sqlite:///{db_file}"
        if "synth_s" in facts:
            print(f"registry: {a.patients:,} synthetic patients (seed {a.seed}) on {a.db}; built by spinereg synth in "
                  f"{facts['synth_s']:.0f} s")
        tag = f"{time.strftime('%Y%m%d%H%M%S', time.gmtime())}{os.getpid() % 100:02d}"
        prep = prepare_mix(home, url, a.invitations, tag)
        print(f"prepared {len(prep.links):,} patients with an operation and an invitation each (send_invitations, "
              f"letters in the outbox) and a FHIR token in {prep.seconds:.0f} s", flush=True)
        log = home / f"serve-mix-{tag}.log"
        load_before = os.getloadavg()
        server = start_server(home, url, a.workers, log)
        try:
            cookies = {"surgeon": login(server.base, USERS[0][0]), "staff": login(server.base, USERS[0][0])}
            n = a.users
            users = {"patient": round(n * 0.4), "fhir": round(n * 0.2), "surgeon": round(n * 0.2)}
            users["staff"] = n - sum(users.values())
            mix = Mix(server.base, prep, cookies, think=a.think, deadline=time.monotonic() + a.duration,
                      max_requests=a.max_requests, timeout=a.timeout, seed=a.seed)
            started = time.monotonic()
            hits = mix.run(users)
            elapsed = time.monotonic() - started
            rss = worker_rss_mb(server.proc.pid)
            load_during = os.getloadavg()
        finally:
            stop_server(server)
        acked = [h.write for h in hits if h.write is not None]
        found = check_writes(url, acked, tag)
    locked_log = log.read_text(errors="replace").count("database is locked")
    print(f"\nmixed workload on {a.db} ({a.patients:,}-patient registry), spinereg serve --workers {a.workers}: "
          f"{a.users} users (" + ", ".join(f"{k} {v}" for k, v in users.items())
          + f"), think time exponential with mean {a.think:g} s, {elapsed:.0f} s")
    print(f"{'kind':<8} {'step':<26} {'n':>6} {'err':>4} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7}  (ms)")
    for kind in KINDS:
        for step in sorted({h.step for h in hits if h.kind == kind}):
            sel = [h for h in hits if h.kind == kind and h.step == step]
            print(f"{kind:<8} {step:<26} {len(sel):>6} {sum(not h.good for h in sel):>4} "
                  f"{_summary([h.ms for h in sel])}")
    errors = [h for h in hits if not h.good]
    locked = sum(h.note == "database is locked" for h in hits)
    print(f"{'all':<8} {'':<26} {len(hits):>6} {len(errors):>4} {_summary([h.ms for h in hits])}")
    p95 = _pct(sorted(h.ms for h in hits), 95) if hits else float("nan")
    print(f"throughput {len(hits) / elapsed:.1f} requests/s; errors {len(errors)}; 'database is locked': {locked} "
          f"answers, {locked_log} in the server log")
    for note in sorted({h.note for h in errors})[:10]:
        print(f"  error: {note} (x{sum(h.note == note for h in errors)})")
    partial = {k: v for k, v in found.items() if k not in ("acknowledged", "lost", "stored") and v}
    print(f"acknowledged writes {len(acked)} ({', '.join(f'{k} {v}' for k, v in found['acknowledged'].items())}); "
          f"found in the database afterwards: {found['stored']}; LOST {len(found['lost'])}; duplicates "
          f"{len(found['duplicates'])}; partial records {sum(len(v) for v in partial.values())}")
    for k, v in partial.items():
        print(f"  {k}: {v[:5]}")
    print("server workers' peak RSS " + ", ".join(f"{r:,.0f}" for r in rss) + " MB; "
          f"machine: {os.cpu_count()} CPUs, load average {load_before[0]:.1f} before, {load_during[0]:.1f} at the "
          f"end; total run {time.perf_counter() - t0:.0f} s")
    missed = bool(found["lost"] or locked or locked_log or partial or found["duplicates"])
    if a.db == "postgresql":
        missed = missed or bool(errors) or p95 > 300
    print("targets " + ("MISSED" if missed else "met") + (" (PostgreSQL: 0 errors, 0 lost, p95 <= 300 ms)"
                                                          if a.db == "postgresql" else
                                                          " (SQLite: 0 'database is locked', 0 lost)"))
    return 1 if missed else 0


if __name__ == "__main__":
    main()
