"""FHIR API write speed: QuestionnaireResponse POSTs from concurrent clients to ``spinereg serve``.

Builds a throwaway synthetic SQLite registry (the embedded default; ``--patients``, default 300) with
``spinereg db init`` + ``spinereg synth``, a site (SYN-H01), a data manager there and its bearer token
(``spinereg token create``), then starts ``spinereg serve`` on 127.0.0.1 (a free port, ``--workers``)
and sends ``--requests`` POSTs of a QuestionnaireResponse (NRS back pain, answered 91 days after one of
the site's operations: the 3-month time point) from ``--clients`` concurrent clients (default 32), over
loopback only.  Each request has a timeout and the run a time limit (``--time-limit``); the server is
stopped at the end in any case.

Prints requests per second, p50/p95/p99/max latency (client side), errors by status, and the lost
writes: the acknowledged POSTs (201, each with its resource id) that the database does not hold,
counted in the database afterwards (rows of the FHIR API's dataset, and each acknowledged id looked up).
Also prints the load average of the (shared) machine before and after.

Also prints the CPU seconds of the server (the gunicorn master and workers, from /proc) and of this
client during the POSTs, per acknowledged POST.

Target (issue 14, point 4): >= 200 POSTs per second with 32 concurrent clients: MET on the development
machine (2 CPUs shared by the server and this client, load average ~1 before), 2026-12-05:
``--requests 3000 --workers 2``: 3000 acknowledged in 13.6 s = 221 per second, p50 142 ms, p95 170 ms,
0 errors, 0 lost writes; server CPU 7.8 ms per POST, client 0.7 ms (the two CPUs are the limit).
A second run, later the same day: 231 per second, p95 162 ms.
Before this session's changes: 14 per second (server ~140 ms of CPU per POST, almost all of it the
import's pandas validator run on one record); see docs/fhir.md, "Speed", for what changed.

Run: .venv/bin/python benchmarks/bench_fhir.py [--requests N] [--clients C] [--workers W] [--patients P]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "a-long-benchmark-passphrase-1"


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPINEREG_", "DJANGO_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["SPINEREG_HOME"] = str(home)
    env.update(extra)
    return env


def _cli(home: Path, *args: str, **extra: str) -> str:
    done = subprocess.run([sys.executable, "-m", "spinereg", *args], env=_env(home, **extra), capture_output=True,
                          text=True, timeout=600, stdin=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        raise SystemExit(f"spinereg {' '.join(args)} failed:\n{done.stderr}{done.stdout}")
    return done.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(home: Path, db: str, workers: int, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    with log.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "spinereg", "serve", "--db", db, "--port", str(port),
                                 "--workers", str(workers)], env=_env(home), stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"spinereg serve exited: {log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
                if resp.status == 200:
                    return proc, port
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    _stop(proc)
    raise SystemExit(f"spinereg serve did not answer within 120 s: {log.read_text()}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # gunicorn's master stops its workers
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _group_cpu(pid: int) -> float:
    """CPU seconds (user + system) of the server: every process of its session (the gunicorn master
    started with start_new_session, and its workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == pid:  # the session id (field 6 of stat; fields[0] is field 3)
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / tick


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=4000, help="POSTs in all (bounded)")
    ap.add_argument("--clients", type=int, default=32, help="concurrent clients")
    ap.add_argument("--workers", type=int, default=3, help="gunicorn workers of spinereg serve")
    ap.add_argument("--patients", type=int, default=300, help="synthetic patients")
    ap.add_argument("--time-limit", type=float, default=180.0, help="seconds for the POSTs at most")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per request at most")
    ap.add_argument("--keep", type=Path, default=None, help="keep the registry in this directory")
    a = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="spinereg-bench-fhir-"))
    db_file = home / "registry.sqlite3"
    db = f"sqlite:///{db_file}"
    t0 = time.perf_counter()
    _cli(home, "db", "init", "--db", db)
    _cli(home, "synth", "--patients", str(a.patients), "--seed", "3", "--db", db)
    _cli(home, "site", "add", "h01", "--name", "Hospital 1", "--hospital", "SYN-H01", "--db", db)
    _cli(home, "user", "add", "bench", "--role", "data_manager", "--site", "h01", "--db", db,
         SPINEREG_PASSWORD=PASSWORD)
    token = _cli(home, "token", "create", "bench", "--db", db).split()[-1]
    con = sqlite3.connect(db_file)
    ops = [(str(p), date.fromisoformat(str(d)[:10])) for p, d in con.execute(
        "SELECT o.patient_id, o.date FROM spinereg_operations o JOIN spinereg_patients p ON p.patient_id = "
        "o.patient_id WHERE o.hospital = 'SYN-H01' AND o.date IS NOT NULL AND p.death_date IS NULL AND o.patient_id "
        "IN (SELECT patient_id FROM spinereg_operations GROUP BY patient_id HAVING COUNT(*) = 1)")]
    before_rows = con.execute("SELECT COUNT(*) FROM spinereg_proms").fetchone()[0]
    con.close()
    if not ops:
        raise SystemExit("no operation at SYN-H01 in the synthetic registry: raise --patients")
    print(f"registry: {a.patients} synthetic patients, {len(ops)} living single-operation patients at SYN-H01 "
          f"(built in {time.perf_counter() - t0:.0f} s)")
    rng = random.Random(7)
    bodies = []
    for i in range(a.requests):
        pid, op_date = ops[rng.randrange(len(ops))]
        bodies.append(json.dumps({
            "resourceType": "QuestionnaireResponse", "status": "completed", "questionnaire": "Questionnaire/nrs-back",
            "subject": {"reference": f"Patient/{pid}"},
            "authored": (op_date + timedelta(days=91)).isoformat() + "T10:00:00+01:00",
            "item": [{"linkId": "nrs_back", "answer": [{"valueCoding": {"code": str(i % 11)}}]}]}).encode())
    log = home / "serve.log"
    proc, port = _start(home, db, a.workers, log)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    acked: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + a.time_limit
    headers = {"Content-Type": "application/fhir+json", "Authorization": f"Bearer {token}"}

    def post(body: bytes) -> None:
        if time.monotonic() > stop_at:
            with lock:
                statuses["skipped (time limit)"] = statuses.get("skipped (time limit)", 0) + 1
            return
        started = time.perf_counter()
        status: str
        rid = None
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=a.timeout)
            try:
                conn.request("POST", "/fhir/QuestionnaireResponse", body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                status = str(resp.status)
                if resp.status == 201:
                    rid = json.loads(data)["id"]
            finally:
                conn.close()
        except (OSError, http.client.HTTPException) as exc:
            status = type(exc).__name__
        elapsed = time.perf_counter() - started
        with lock:
            statuses[status] = statuses.get(status, 0) + 1
            if rid is not None:
                latencies.append(elapsed)
                acked.append(rid)

    load_before = os.getloadavg()
    try:
        # a short warm-up (each worker imports the FHIR models on its first request); not counted
        with ThreadPoolExecutor(a.workers) as pool:
            list(pool.map(lambda _: urllib.request.urlopen(urllib.request.Request(
                f"http://127.0.0.1:{port}/fhir/Questionnaire/nrs-back", headers=headers), timeout=30).read(),
                range(a.workers * 2)))
        server_cpu0, client_cpu0 = _group_cpu(proc.pid), _own_cpu()
        started = time.perf_counter()
        with ThreadPoolExecutor(a.clients) as pool:
            list(pool.map(post, bodies))
        wall = time.perf_counter() - started
        server_cpu, client_cpu = _group_cpu(proc.pid) - server_cpu0, _own_cpu() - client_cpu0
    finally:
        load_after = os.getloadavg()
        _stop(proc)
    con = sqlite3.connect(db_file)
    try:
        stored = con.execute("SELECT COUNT(*) FROM spinereg_proms").fetchone()[0] - before_rows
        ids = {r[0] for r in con.execute("SELECT prom_id FROM spinereg_proms WHERE prom_id LIKE 'fhir-api:%'")}
        audited = con.execute("SELECT COUNT(*) FROM spinereg_audit WHERE entity = 'proms' AND actor = "
                              "'bench (FHIR API)'").fetchone()[0]
        integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()
    missing = [r for r in acked if r.rsplit(".", 1)[0].replace("..", ":") not in ids]
    errors = sum(n for s, n in statuses.items() if s not in ("201", "skipped (time limit)"))
    ms = [x * 1000 for x in latencies]
    print(f"\nPOST /fhir/QuestionnaireResponse: {len(bodies)} requests, {a.clients} concurrent clients, spinereg serve "
          f"--workers {a.workers}, embedded SQLite, loopback")
    print(f"  acknowledged (201): {len(acked)} in {wall:.1f} s = {len(acked) / wall:.0f} req/s  [target >= 200]")
    print(f"  latency of the acknowledged, ms: p50 {_pct(ms, 50):.0f}, p95 {_pct(ms, 95):.0f}, "
          f"p99 {_pct(ms, 99):.0f}, max {max(ms, default=float('nan')):.0f}")
    print(f"  statuses: {dict(sorted(statuses.items()))}; errors: {errors}")
    print(f"  in the database afterwards: {stored} new proms rows, {audited} audit entries; lost writes "
          f"(acknowledged - stored): {len(acked) - stored}; acknowledged ids not found: {len(missing)}; "
          f"integrity_check: {integrity}")
    n = max(len(acked), 1)
    print(f"  CPU during the POSTs: server (gunicorn master and workers) {server_cpu:.1f} s = "
          f"{server_cpu / n * 1000:.1f} ms per acknowledged POST; this client {client_cpu:.1f} s = "
          f"{client_cpu / n * 1000:.1f} ms per POST; machine capacity {wall * (os.cpu_count() or 1):.1f} CPU-s")
    print(f"  load average (1, 5, 15 min) before {tuple(round(x, 2) for x in load_before)}, after "
          f"{tuple(round(x, 2) for x in load_after)}; {os.cpu_count()} CPUs")
    if a.keep:
        shutil.copytree(home, a.keep, dirs_exist_ok=True)
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
