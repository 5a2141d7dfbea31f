"""Follow-up speed: `spinereg followup send` over a national synthetic registry (issue 13, point 6).

Target: the send over a 1,000,000-patient registry finishes in <= 60 s.

The registry: the SQLite registry that ``benchmarks/bench_web.py`` builds and caches
(``spinereg db init`` + ``spinereg synth``, ``--cache``, default ``benchmarks/.cache/``),
built here through bench_web's ``build`` when missing, or any registry file given with
``--db-file``.  It is copied to a scratch folder (the cache is never changed), brought up
to date with ``spinereg db init``, and its follow-up tables are emptied.  Then the set-up,
as staff would have recorded it (plain SQL, not timed):

* an e-mail address for ``--email-share`` of the patients (default 0.6; neutral addresses
  ``patient-<n>@example.invalid``), the others get letters;
* a withdrawal of consent for ``--withdrawn-share`` of them (default 0.01).

Runs, each ``spinereg followup send --db ... --today ... --outbox ...`` in its own process
(its wall time and peak RSS measured):

1. ``--today`` (default 2018-06-15, inside the synthetic registry's 2010-2020 span): the
   first run on a registry that never sent anything, the worst case: every time point due
   that day is invited at once;
2. the same day again: idempotency (nothing new is sent);
3. ``--today`` + 14 days: the reminders (and the few time points newly due).

It prints, per run, seconds, peak RSS, the command's summary line, and the invitations,
delivery attempts, e-mail files and letter pages counted afterwards, with the load average
(other jobs share the machine).

Measured (2 vCPUs shared with other jobs, load average 3-6): first run 57,469 invited (34,862 e-mails,
22,607 letters) in 22.8 s (CPU 21.1 s, peak RSS 0.9 GB); the same day again 6.1 s, nothing sent;
14 days later 53,192 reminders and 4,216 new invitations in 17.2 s.  See docs/followup.md, "Speed".

Run: .venv/bin/python benchmarks/bench_followup.py [--patients N] [--today YYYY-MM-DD] [--db-file F] [--keep]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import zlib
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 60.0


def _bench_web() -> Any:
    spec = importlib.util.spec_from_file_location("bench_web", ROOT / "benchmarks" / "bench_web.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPINEREG_", "DJANGO_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["SPINEREG_HOME"] = str(home)
    return env


def run(home: Path, *args: str, timeout: float) -> tuple[float, float, float, str]:
    """``spinereg ARGS`` in its own process: (seconds, CPU seconds, peak RSS in MB, its standard error)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "spinereg", *args], env=_env(home), stdout=subprocess.DEVNULL,
                                stderr=err, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        err.seek(0)
        text = err.read().decode(errors="replace")
    if proc.returncode not in (0, 1):  # 1: some delivery failed (printed in the summary)
        raise SystemExit(f"spinereg {' '.join(args)} failed (exit {proc.returncode}"
                         f"{', killed after the time limit' if seconds >= timeout else ''}):\n{text}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text


def prepare(db: Path, email_share: float, withdrawn_share: float) -> dict[str, int]:
    """Empty the follow-up tables; record e-mail addresses and withdrawals for shares of the patients."""
    con = sqlite3.connect(db)
    with con:
        for table in ("spinereg_followup_delivery", "spinereg_followup_invitation", "spinereg_followup_contact",
                      "spinereg_followup_consent"):
            con.execute(f"DELETE FROM {table}")
        patients = [p for (p,) in con.execute("SELECT patient_id FROM spinereg_patients ORDER BY patient_id")]
        # a fixed, spread-out choice of patients (CRC32 of the pseudonym), the same on every run
        share = [(zlib.crc32(p.encode()) % 10_000) / 10_000 for p in patients]
        mail = [(p, f"patient-{n}@example.invalid", "2010-01-01 00:00:00")
                for n, (p, s) in enumerate(zip(patients, share, strict=True)) if s < email_share]
        con.executemany("INSERT INTO spinereg_followup_contact (patient_id, email, updated_at) VALUES (?, ?, ?)", mail)
        gone = [(p, "withdrawn", "2012-01-01", "2012-01-01 00:00:00", "bench")
                for p, s in zip(patients, share, strict=True) if 1 - withdrawn_share <= s]
        con.executemany('INSERT INTO spinereg_followup_consent (patient_id, status, "on", at, by) '
                        "VALUES (?, ?, ?, ?, ?)", gone)
    con.close()
    return {"patients": len(patients), "with_email": len(mail), "withdrawn": len(gone)}


def counts(db: Path, outbox: Path) -> dict[str, Any]:
    from pypdf import PdfReader

    con = sqlite3.connect(db)
    out: dict[str, Any] = {}
    out["invitations"] = dict(con.execute("SELECT status, count(*) FROM spinereg_followup_invitation "
                                          "GROUP BY status").fetchall())
    out["attempts"] = {f"{k}/{c}/{o}": n for k, c, o, n in con.execute(
        "SELECT kind, channel, outcome, count(*) FROM spinereg_followup_delivery GROUP BY 1, 2, 3")}
    out["audit_entries_followup"] = con.execute("SELECT count(*) FROM spinereg_audit WHERE entity IN "
                                                "('invitations', 'delivery_attempts')").fetchone()[0]
    con.close()
    mail = outbox / "mail"
    out["eml_files"] = sum(1 for _ in mail.glob("*.eml")) if mail.exists() else 0
    letters = sorted((outbox / "letters").glob("*.pdf")) if (outbox / "letters").exists() else []
    out["letter_files"] = {p.name: len(PdfReader(p).pages) for p in letters}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=2018)
    ap.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / ".cache")
    ap.add_argument("--db-file", type=Path, help="an existing SQLite registry (copied, never changed)")
    ap.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed at the end)")
    ap.add_argument("--today", type=date.fromisoformat, default=date(2018, 6, 15))
    ap.add_argument("--email-share", type=float, default=0.6)
    ap.add_argument("--withdrawn-share", type=float, default=0.01)
    ap.add_argument("--time-limit", type=float, default=1800, help="seconds per command")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = ap.parse_args()

    source = args.db_file
    if source is None:
        _home, source, facts = _bench_web().build(args.cache, args.patients, args.seed, False, args.time_limit * 4)
        print(f"registry: {source} ({facts.get('patients')} patients, seed {facts.get('seed')})")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-followup-"))
    work.mkdir(parents=True, exist_ok=True)
    home, db, outbox = work / "home", work / "registry.sqlite3", work / "outbox"
    try:
        home.mkdir(exist_ok=True)
        shutil.rmtree(outbox, ignore_errors=True)
        t0 = time.perf_counter()
        shutil.copyfile(source, db)
        url = f"sqlite:///{db}"
        run(home, "db", "init", "--db", url, timeout=args.time_limit)
        setup = prepare(db, args.email_share, args.withdrawn_share)
        print(f"set-up ({time.perf_counter() - t0:.0f} s, not timed): {setup}")
        print(f"machine: {os.cpu_count()} CPUs, load average before {os.getloadavg()}")
        worst = 0.0
        for label, day in (("1. first run", args.today), ("2. same day again", args.today),
                           ("3. 14 days later", args.today + timedelta(days=14))):
            load = os.getloadavg()[0]
            seconds, cpu, rss, text = run(home, "followup", "send", "--db", url, "--today", day.isoformat(),
                                     "--outbox", str(outbox), "--base-url", "https://registry.example.org",
                                     timeout=args.time_limit)
            worst = max(worst, seconds)
            summary = text.strip().splitlines()[-1] if text.strip() else ""
            print(f"{label} ({day}): {seconds:.1f} s (CPU {cpu:.1f} s), peak RSS {rss:.0f} MB, "
                  f"load average {load:.1f} -> "
                  f"{os.getloadavg()[0]:.1f}\n   {summary}\n   {counts(db, outbox)}", flush=True)
        print(f"worst run {worst:.1f} s; target <= {TARGET_S:.0f} s: {'met' if worst <= TARGET_S else 'NOT met'}")
        print(f"peak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
