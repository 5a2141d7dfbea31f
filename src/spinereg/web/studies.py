"""Studies from the web: an analyst runs a study spec on the registry the web app serves.

A run is a directory ``$SPINEREG_HOME/web-studies/<run id>/`` holding

``spec.toml``
    The spec that ran: the chosen bundled spec or the uploaded one, with its
    ``[data]`` table replaced by this registry (an analyst cannot point a study
    at other files or databases on the server; a spec's own ``data.database`` or
    ``data.extract`` is ignored and the run page says so).  ``results.json``
    records the SHA-256 of this file.
``status.json``
    Who started the run and when, where the spec came from (and the SHA-256 of
    the file as uploaded), the status (``running``, ``done`` or ``failed`` with
    the error message) and, when done, the cohort size and the engine's warnings.
``out/``
    What ``spinereg study run`` writes: ``results.json``, ``tables/``, the
    report (``report.html``, ``report.pdf``, ``report.docx``) and ``figures/``.
``run.log``
    The runner's standard error (for an administrator; never shown on a page).

The run is a process of its own (``python -m spinereg.web.studies RUN_DIR``,
started at low priority in a session of its own, so a web worker that restarts
does not stop it).  It reads the registry through :func:`spinereg.registry.load_extract`
and runs the public study and report API (:func:`spinereg.study.load_spec`,
:func:`spinereg.study.run_study`, :func:`spinereg.report.render_report`), exactly
as ``spinereg study run --db URL`` does; the database URL reaches it in the
environment (``SPINEREG_DATABASE_URL``), never on the command line.  The PDF is
typeset by reportlab: no browser is needed.

Outputs are the engine's: the registry holds pseudonyms only, and the spec's
small-cell suppression applies as on the command line.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import math
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from django import forms
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from spinereg._errors import SpineregError
from spinereg.web.permissions import staff_view

__all__ = ["DOWNLOADS", "MAX_RUNNING", "MAX_SPEC_BYTES", "bundled_specs", "runs_dir", "spec_toml"]

#: Largest spec file accepted for upload (bytes).
MAX_SPEC_BYTES = 64 * 1024
#: Runs at once (a run takes a core for several seconds to minutes).
MAX_RUNNING = 2
#: Longest CPU time a run may take (seconds); the run is stopped after it.
MAX_CPU_SECONDS = 3600
#: Report formats a web run writes.
FORMATS = ("html", "pdf", "docx")
#: The files a run offers for download: name -> (path inside the run directory, content type).
DOWNLOADS: dict[str, tuple[str, str]] = {
    "results.json": ("out/results.json", "application/json"),
    "report.html": ("out/report.html", "text/html; charset=utf-8"),
    "report.pdf": ("out/report.pdf", "application/pdf"),
    "report.docx": ("out/report.docx",
                    "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    "spec.toml": ("spec.toml", "application/toml; charset=utf-8"),
}
_RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")
_STATUS = "status.json"
_REFRESH_SECONDS = 3


# --- where runs live, and the bundled specs ------------------------------------------------------------

def runs_dir() -> Path:
    """``$SPINEREG_HOME/web-studies`` (``SPINEREG_HOME`` defaults to ``~/.local/share/spinereg``)."""
    home = os.environ.get("SPINEREG_HOME")
    base = Path(home) if home else Path.home() / ".local" / "share" / "spinereg"
    return base / "web-studies"


def bundled_specs() -> dict[str, Path]:
    """The study specs shipped with spinereg (``examples/<name>/study.toml``; the seed study is
    ``pvp-cancer-vcf``), by name: the repository's copies, else the installed wheel's."""
    found: dict[str, Path] = {}
    repo = Path(__file__).resolve().parents[3] / "examples"
    if repo.is_dir():
        found.update({p.parent.name: p for p in sorted(repo.glob("*/study.toml"))})
    if not found:
        packaged = resources.files("spinereg").joinpath("examples")
        if packaged.is_dir():
            for d in sorted(packaged.iterdir(), key=lambda t: t.name):
                spec = d.joinpath("study.toml")
                if spec.is_file():
                    found[d.name] = Path(str(spec))
    return found


# --- the spec that runs: [data] replaced by this registry -----------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_key(k: Any) -> str:
    return str(k) if _BARE_KEY.fullmatch(str(k)) else json.dumps(str(k), ensure_ascii=False)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # JSON's escapes are TOML basic-string escapes
    if isinstance(v, dt.date | dt.time):  # datetime is a date
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}"
                               for k, x in v.items()) + "}"
    raise TypeError(f"not a TOML value: {type(v).__name__}")  # pragma: no cover - tomllib yields only these


def spec_toml(doc: Mapping[str, Any], database: str) -> str:
    """The TOML text of a parsed spec ``doc`` with its ``[data]`` table replaced by ``database``.

    Top-level keys first, then one ``[table]`` per top-level table with its
    nested tables written inline; ``tomllib.loads(spec_toml(doc, db))`` equals
    ``doc`` with ``data = {"database": db}``.
    """
    rest = {k: v for k, v in doc.items() if k != "data"}
    lines = ["# Run by the spinereg web registry on its own registry: [data] is set by the web app."]
    lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in rest.items() if not isinstance(v, dict)]
    for name, table in [("data", {"database": database})] + [(k, v) for k, v in rest.items() if isinstance(v, dict)]:
        lines += ["", f"[{_toml_key(name)}]"] + [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _ignored_data(doc: Mapping[str, Any]) -> str | None:
    """The spec's own data source (``data.database = '...'``), which the web run ignores; None without one."""
    data = doc.get("data")
    if data is None:
        return None
    if isinstance(data, dict) and data:
        return ", ".join(f"data.{k} = {str(v)[:200]!r}" for k, v in data.items())
    return f"data = {str(data)[:200]!r}"


class _InvalidSpecError(SpineregError):
    """The spec cannot run: one message per line."""


def _prepare(raw: bytes, shown_name: str, database: str) -> tuple[str, str | None]:
    """Check a spec (the engine's ``study check``, on the spec with ``[data]`` replaced); return the
    text that runs and the spec's own data source, which is ignored (:func:`_ignored_data`).
    Raises :class:`_InvalidSpecError` with the engine's messages."""
    import tomllib

    from spinereg.study import load_spec

    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise _InvalidSpecError(f"{shown_name}: not valid TOML: {exc}") from None
    ignored = _ignored_data(doc)
    text = spec_toml(doc, database)
    with tempfile.TemporaryDirectory(prefix="spec-check-") as tmp:
        path = Path(tmp) / "spec.toml"
        path.write_text(text, encoding="utf-8")
        try:
            load_spec(path)
        except SpineregError as exc:
            raise _InvalidSpecError(str(exc).replace(f"{path}: ", f"{shown_name}: ")) from None
    return text, ignored


# --- run status ---------------------------------------------------------------------------------------

def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def _write_status(run_dir: Path, status: Mapping[str, Any]) -> None:
    tmp = run_dir / f".{_STATUS}.{os.getpid()}.{threading.get_ident()}.partial"  # one per writer
    tmp.write_text(json.dumps(status, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, run_dir / _STATUS)


def _read_status(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((run_dir / _STATUS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _alive(status: Mapping[str, Any], run_id: str) -> bool:
    """Whether the runner process of run ``run_id`` is still running."""
    pid = status.get("pid")
    if pid is None:  # being started: the web writes the pid just after starting the process
        try:
            started = dt.datetime.fromisoformat(str(status.get("started")))
        except ValueError:
            return False
        return (dt.datetime.now(dt.UTC) - started).total_seconds() < 60
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process: the pid was reused
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():  # Linux: a reused pid runs something else
        with contextlib.suppress(OSError):
            return run_id.encode() in cmdline.read_bytes()
    return True


#: status["error_code"] -> the message shown (translated when shown); "engine": the engine's own message
def _error_message(status: Mapping[str, Any]) -> str:
    code = status.get("error_code")
    if code == "stopped":
        return str(_("The run stopped unexpectedly (the server restarted, or the run took too long). Start it again."))
    if code == "internal":
        return str(_("The study stopped on an internal error; an administrator finds the details in the run's "
                     "log (run.log)."))
    if code == "start":
        return str(_("The study could not be started: %(reason)s") % {"reason": status.get("error") or ""})
    return str(status.get("error") or "")


def _mark_stopped(run_dir: Path) -> dict[str, Any] | None:
    """Mark a run whose runner is gone without a final status as failed."""
    status = _read_status(run_dir)
    if status is not None and status.get("status") == "running":
        status.update(status="failed", error_code="stopped", error=None, finished=_now())
        _write_status(run_dir, status)
    return status


def _current_status(run_dir: Path) -> dict[str, Any] | None:
    """The run's status; a ``running`` run whose process is gone is marked failed."""
    status = _read_status(run_dir)
    if status is not None and status.get("status") == "running" and not _alive(status, run_dir.name):
        time.sleep(0.2)  # the runner writes its final status just before it exits
        status = _mark_stopped(run_dir)
    return status


def _runs(newest: int = 50) -> list[dict[str, Any]]:
    """The status of the ``newest`` runs, newest first (run ids sort by their start)."""
    base = runs_dir()
    if not base.is_dir():
        return []
    found = []
    for d in sorted((d for d in base.iterdir() if _RUN_ID.fullmatch(d.name)), reverse=True)[:newest]:
        if d.is_dir():
            status = _current_status(d)
            if status is not None:
                found.append(status)
    return found


def _run_dir(run_id: str) -> Path:
    """The directory of run ``run_id`` (404 for a malformed or unknown id)."""
    if not _RUN_ID.fullmatch(run_id):
        raise Http404(_("No such study run."))
    d = runs_dir() / run_id
    if not (d / _STATUS).is_file():
        raise Http404(_("No such study run."))
    return d


# --- starting a run -----------------------------------------------------------------------------------

def _database_url() -> str:
    from spinereg.registry import resolve_database_url

    return resolve_database_url(None)  # the web settings' database (SPINEREG_DATABASE_URL)


def _start(request: HttpRequest, text: str, *, source: str, source_sha256: str, ignored_data: str | None) -> str:
    """Create the run directory, start the runner; return the run id."""
    base = runs_dir()
    base.mkdir(parents=True, exist_ok=True)
    run_id = f"{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
    run_dir = base / run_id
    run_dir.mkdir(mode=0o750)
    (run_dir / "spec.toml").write_text(text, encoding="utf-8")
    status: dict[str, Any] = {
        "run_id": run_id, "status": "running", "user": request.user.get_username(),
        "role": request.user.staff.role, "started": _now(), "finished": None, "source": source,
        "source_sha256": source_sha256, "spec_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "ignored_data": ignored_data, "error_code": None, "error": None, "pid": None,
    }
    _write_status(run_dir, status)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_") and k != "SPINEREG_SECRET_KEY"}
    env["SPINEREG_DATABASE_URL"] = _database_url()
    try:
        with (run_dir / "run.log").open("wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "spinereg.web.studies", str(run_dir)], cwd=run_dir,
                                    env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
    except OSError as exc:
        status.update(status="failed", error_code="start", error=exc.strerror or type(exc).__name__,
                      finished=_now())
        _write_status(run_dir, status)
        return run_id
    status["pid"] = proc.pid
    current = _read_status(run_dir)
    if current is not None and current.get("status") == "running":  # the runner may have finished already
        _write_status(run_dir, {**current, "pid": proc.pid})
    threading.Thread(target=_reap, args=(proc, run_dir), daemon=True, name=f"study-{run_id}").start()
    return run_id


def _reap(proc: subprocess.Popen[bytes], run_dir: Path) -> None:
    """Wait for the runner (no zombie); a runner that died without a final status is marked failed."""
    proc.wait()
    _mark_stopped(run_dir)


# --- forms and views ----------------------------------------------------------------------------------

class UploadSpecForm(forms.Form):
    spec_file = forms.FileField(
        label=gettext_lazy("Study spec (TOML)"),
        help_text=gettext_lazy("At most 64 KiB. Its [data] table is ignored: the study runs on this registry."),
        widget=forms.ClearableFileInput(attrs={"accept": ".toml,application/toml,text/plain"}))


def _running_count() -> int:
    # a run older than the newest 200 has long finished (or been stopped by its CPU time limit)
    return sum(1 for r in _runs(200) if r.get("status") == "running")


@contextlib.contextmanager
def _start_lock() -> Iterator[None]:
    """Serialise "count the running runs, start one" across the web's worker processes."""
    import fcntl

    base = runs_dir()
    base.mkdir(parents=True, exist_ok=True)
    with (base / ".start.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _post(request: HttpRequest, specs: dict[str, Path]) -> tuple[str | None, UploadSpecForm, list[str]]:
    """Start the run a POST asks for: the run id, or None with the form and the errors to show."""
    form = UploadSpecForm()
    errors: list[str] = []
    if _running_count() >= MAX_RUNNING:
        errors.append(_("%(n)d studies are running already: start this one when one of them has finished.")
                      % {"n": MAX_RUNNING})
    elif "bundled" in request.POST:
        bundled = request.POST["bundled"]
        if bundled not in specs:
            raise Http404(_("No such bundled study spec."))
        raw = specs[bundled].read_bytes()
        try:
            text, ignored = _prepare(raw, f"{bundled}/study.toml", _safe_database())
        except _InvalidSpecError as exc:  # a bundled spec is tested: only a broken installation gets here
            errors += str(exc).splitlines()
        else:
            run_id = _start(request, text, source=f"bundled: {bundled}",
                            source_sha256=hashlib.sha256(raw).hexdigest(), ignored_data=ignored)
            return run_id, form, errors
    else:
        form = UploadSpecForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["spec_file"]
            name = Path(str(upload.name or "spec.toml")).name[:100]
            if upload.size > MAX_SPEC_BYTES:
                form.add_error("spec_file", _("%(name)s is %(size)d bytes: a study spec may have at most "
                                              "%(max)d bytes.") % {"name": name, "size": upload.size,
                                                                   "max": MAX_SPEC_BYTES})
            else:
                raw = upload.read()
                try:
                    text, ignored = _prepare(raw, name, _safe_database())
                except _InvalidSpecError as exc:
                    for line in str(exc).splitlines():
                        form.add_error("spec_file", line)
                else:
                    run_id = _start(request, text, source=f"upload: {name}",
                                    source_sha256=hashlib.sha256(raw).hexdigest(), ignored_data=ignored)
                    return run_id, form, errors
    return None, form, errors


@staff_view("run_studies")
@require_http_methods(["GET", "POST"])  # type: ignore[untyped-decorator]
def studies(request: HttpRequest) -> HttpResponse:
    """The bundled specs, the upload form and the recent runs; POST starts a run."""
    specs = bundled_specs()
    form = UploadSpecForm()
    errors: list[str] = []
    if request.method == "POST":
        if int(request.META.get("CONTENT_LENGTH") or 0) > MAX_SPEC_BYTES + 16 * 1024:  # before reading the body
            errors.append(_("The upload is too large: a study spec may have at most %(max)d bytes.")
                          % {"max": MAX_SPEC_BYTES})
        else:
            with _start_lock():
                run_id, form, errors = _post(request, specs)
            if run_id is not None:
                return redirect("study-run", run_id=run_id)
    return render(request, "web/studies/index.html", {
        "specs": sorted(specs), "form": form, "errors": errors, "runs": _runs(),
        "max_kib": MAX_SPEC_BYTES // 1024})


def _safe_database() -> str:
    """This registry's URL as a spec records it: without a password."""
    from spinereg.registry import safe_url

    return safe_url(_database_url())


def _cohort(run_dir: Path) -> str | None:
    """The cohort size as the report shows it (a count below the threshold hidden when suppressed)."""
    try:
        results = json.loads((run_dir / "out" / "results.json").read_text(encoding="utf-8"))
        n = int(results["tables"]["flow"][-1]["n_patients"])
        settings = results["settings"]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None
    threshold = int(settings.get("small_cell_threshold") or 0)
    if settings.get("suppress_small_cells") and 0 < n < threshold:
        return f"<{threshold}"
    return str(n)


@staff_view("run_studies")
@require_http_methods(["GET"])  # type: ignore[untyped-decorator]
def study_run(request: HttpRequest, run_id: str) -> HttpResponse:
    """One run: its status (the page reloads itself while it runs) and, once done, its files."""
    run_dir = _run_dir(run_id)
    status = _current_status(run_dir)
    if status is None:
        raise Http404(_("No such study run."))
    running = status.get("status") == "running"
    error = _error_message(status) if status.get("status") == "failed" else ""
    files = [name for name, (rel, _type) in DOWNLOADS.items() if not running and (run_dir / rel).is_file()]
    # while it runs the page reloads itself by <meta http-equiv="refresh"> (no script: the CSP allows none)
    return render(request, "web/studies/run.html", {
        "run": status, "run_id": run_id, "running": running, "files": files, "error": error,
        "cohort": _cohort(run_dir) if status.get("status") == "done" else None,
        "refresh": _REFRESH_SECONDS})


@staff_view("run_studies")
@require_http_methods(["GET"])  # type: ignore[untyped-decorator]
def study_download(request: HttpRequest, run_id: str, filename: str) -> FileResponse:
    """A run's output file: ``filename`` must be one of :data:`DOWNLOADS` (anything else is a 404)."""
    if filename not in DOWNLOADS:
        raise Http404(_("No such file."))
    run_dir = _run_dir(run_id)
    status = _read_status(run_dir)
    rel, content_type = DOWNLOADS[filename]
    path = run_dir / rel
    if status is None or (status.get("status") == "running" and filename != "spec.toml") or not path.is_file():
        raise Http404(_("No such file."))
    return FileResponse(path.open("rb"), as_attachment=True, filename=f"{run_id}-{filename}",
                        content_type=content_type)


# --- the runner (a process of its own) ----------------------------------------------------------------

def _execute(run_dir: Path) -> dict[str, Any]:
    """Run ``run_dir/spec.toml`` on the registry at ``SPINEREG_DATABASE_URL`` as ``spinereg study run``
    does; return what the status records."""
    from spinereg.registry import load_extract, open_registry
    from spinereg.report import render_report
    from spinereg.study import candidate_patients, load_spec, run_study

    spec, digest = load_spec(run_dir / "spec.toml")
    alias = open_registry(None, create=False)
    extract = load_extract(alias, only=lambda pats, ops: candidate_patients(pats, ops, spec))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_study(spec, extract, spec_sha256=digest)
    out = run_dir / "out"
    result.write(out)
    render_report(out / "results.json", out, formats=FORMATS)
    return {"warnings": list(dict.fromkeys(str(w.message) for w in caught))}


def _runner_main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m spinereg.web.studies RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(argv[0])
    status = _read_status(run_dir)
    if status is None:
        print(f"{run_dir}: no readable {_STATUS}", file=sys.stderr)
        return 2
    with contextlib.suppress(OSError):
        os.nice(10)  # the web pages stay responsive while a study runs
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        resource.setrlimit(resource.RLIMIT_CPU, (MAX_CPU_SECONDS, MAX_CPU_SECONDS))
    t0 = time.perf_counter()
    try:
        extra = _execute(run_dir)
    except SpineregError as exc:
        outcome: dict[str, Any] = {"status": "failed", "error_code": "engine", "error": str(exc)}
    except Exception:  # recorded; the details go to run.log, never to a page
        traceback.print_exc()
        outcome = {"status": "failed", "error_code": "internal", "error": None}
    else:
        outcome = {"status": "done", **extra}
    current = _read_status(run_dir) or status
    _write_status(run_dir, {**current, **outcome, "finished": _now(),
                            "seconds": round(time.perf_counter() - t0, 1)})
    return 0 if outcome["status"] == "done" else 1


if __name__ == "__main__":
    sys.exit(_runner_main(sys.argv[1:]))
