"""Shared by the security, permission-matrix and browser tests of the web registry.

* :func:`url_patterns`: the web URLconf, enumerated in a process of its own configured with the web
  settings (the pytest process cannot load them): each pattern's route, name, URL parameters, the
  capability its view declares (``@staff_view``) and the HTTP methods it allows.
* :func:`seeded_registry`: a registry with two sites, each with a patient (registered by CPR number
  through ``register_patient``), an operation with two treated levels, a complication and an
  imaging finding, and one user per role per site (created with :func:`spinereg.web.users.add_user`,
  the function behind the user pages), built once per test session (SQLite: copied per module).
* :func:`totp`: RFC 6238 codes (HMAC-SHA1, 30 s steps, 6 digits), independent of django-otp.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import shutil
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.web.conftest import PASSWORD, Browser, Server, cli_env, ok, run_cli

ROLES = ("admin", "surgeon", "reviewer", "data_manager", "analyst", "auditor")
NATIONAL = frozenset({"admin", "analyst", "auditor"})
SITES = ("s1", "s2")
#: A fixed site key (64 hex digits): the pseudonyms are the same on every run.
SITE_KEY = "5e" * 32
#: Synthetic CPR numbers (valid dates; no real person is meant).  Never to be seen in a page or a log.
CPRS = {"s1": "070361-4417", "s2": "150782-2318"}
#: URL names open to anyone (no login), and those any logged-in staff user reaches (no capability).
#: The patient's questionnaire link (issue 13) is open too: its single-use token is the credential
#: (tests/followup/test_questionnaire_page.py: unknown 404, used or expired 410).
OPEN_NAMES = frozenset({"login", "healthz", "set_language", "followup-questionnaire"})
LOGIN_ONLY_NAMES = frozenset({"logout", "totp-setup"})
OPEN_PREFIXES = ("accounts/login/", "healthz", "i18n/", "static/", "q/")
#: The FHIR API (issue 14): bearer tokens, no session, no CSRF (token-only endpoints are csrf-exempt);
#: tested here only for refusing a caller without a token, a logged-in browser session included.
TOKEN_API_PREFIX = "fhir/"
#: FHIR endpoints open to anyone (the CapabilityStatement).
TOKEN_API_OPEN = frozenset({"fhir-metadata"})
#: URL parameters naming an object that belongs to no site (a study run: only national roles have the
#: capability), with a value naming none: the matrix checks 403 without the capability and 404 with it.
UNSCOPED_PARAMS = {"run_id": "20000101-000000-abcdef", "filename": "report.html"}


def totp(key: bytes, at: float | None = None, step: int = 30, digits: int = 6) -> str:
    """The RFC 6238 code of ``key`` at time ``at`` (HOTP of the 30 s step counter, RFC 4226 truncation)."""
    counter = int((time.time() if at is None else at) // step)
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF) % 10 ** digits
    return f"{code:0{digits}d}"


def web_env(home: Path, db_url: str) -> dict[str, str]:
    return {"SPINEREG_DATABASE_URL": db_url, "SPINEREG_SITE_KEY": SITE_KEY}


def run_python(home: Path, db_url: str, code: str, timeout: float = 180) -> str:
    """Run ``code`` in a fresh interpreter configured with the web settings; its stdout."""
    prelude = "from spinereg.web import configure; configure(None)\n"
    done = subprocess.run([sys.executable, "-c", prelude + code], env=cli_env(home, **web_env(home, db_url)),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


# -- the URLconf ---------------------------------------------------------------------------------------------
_ENUMERATE = r'''
import json
from django.urls import URLPattern, URLResolver, get_resolver

def methods(view):
    """The HTTP methods a function view allows (require_http_methods and friends), else None."""
    seen = set()
    while view is not None and id(view) not in seen:
        seen.add(id(view))
        code = getattr(view, "__code__", None)
        if code is not None and "request_method_list" in code.co_freevars:
            cell = view.__closure__[code.co_freevars.index("request_method_list")]
            return sorted(m.upper() for m in cell.cell_contents)
        cls = getattr(view, "view_class", None)
        if cls is not None:
            return sorted(m.upper() for m in cls.http_method_names if hasattr(cls, m) and m != "options")
        view = getattr(view, "__wrapped__", None)
    return None

def walk(patterns, prefix):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from walk(p.url_patterns, prefix + str(p.pattern))
        else:
            cb = p.callback
            yield {"route": prefix + str(p.pattern), "name": p.name, "capability": getattr(cb, "capability", None),
                   "params": sorted(p.pattern.converters) if hasattr(p.pattern, "converters") else [],
                   "regex": not hasattr(p.pattern, "converters"),
                   "view": f"{cb.__module__}.{getattr(cb, '__qualname__', type(cb).__name__)}",
                   "methods": methods(cb)}

from spinereg.web.permissions import CAPABILITIES, URL_OBJECTS
print(json.dumps({"patterns": list(walk(get_resolver().url_patterns, "")),
                  "capabilities": {k: sorted(v) for k, v in CAPABILITIES.items()}, "url_objects": URL_OBJECTS}))
'''


@dataclass(frozen=True)
class Pattern:
    route: str
    name: str | None
    capability: str | None
    params: tuple[str, ...]
    regex: bool
    view: str
    methods: tuple[str, ...] | None

    @property
    def label(self) -> str:
        return self.name or self.route

    def is_open(self) -> bool:
        return self.name in OPEN_NAMES or self.route.startswith(OPEN_PREFIXES)

    def is_token_api(self) -> bool:
        return self.route.startswith(TOKEN_API_PREFIX)

    def allows(self, method: str) -> bool:
        return self.methods is None or method in self.methods

    def path(self, values: dict[str, str]) -> str:
        """The URL with each ``<conv:name>`` replaced by ``values[name]``."""
        def fill(m: re.Match[str]) -> str:
            return values[m.group(2)]
        return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", fill, self.route)


@dataclass(frozen=True)
class UrlConf:
    patterns: tuple[Pattern, ...]
    capabilities: dict[str, frozenset[str]]
    url_objects: dict[str, str]


_URLCONF: dict[str, UrlConf] = {}


def url_patterns(home: Path) -> UrlConf:
    """The web URLconf (computed once per session, in a process with the web settings)."""
    if "conf" not in _URLCONF:
        env = cli_env(home, DJANGO_SETTINGS_MODULE="spinereg.web.settings",
                      SPINEREG_DATABASE_URL=f"sqlite:///{home / 'unused.sqlite3'}")
        done = subprocess.run([sys.executable, "-c", "import django; django.setup()\n" + _ENUMERATE], env=env,
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)
        assert done.returncode == 0, done.stderr
        raw = json.loads(done.stdout)
        pats = tuple(Pattern(p["route"], p["name"], p["capability"], tuple(p["params"]), p["regex"], p["view"],
                             tuple(p["methods"]) if p["methods"] is not None else None) for p in raw["patterns"])
        _URLCONF["conf"] = UrlConf(pats, {k: frozenset(v) for k, v in raw["capabilities"].items()},
                                   raw["url_objects"])
    return _URLCONF["conf"]


# -- the seeded registry -------------------------------------------------------------------------------------
_SEED = r'''
import json
from spinereg.data import load_site_key
from spinereg.registry import RegistryWriter, register_patient
from spinereg.web.models import Site
from spinereg.web.users import add_user

sites = json.loads(SITES)
cprs = json.loads(CPRS)
key = load_site_key()
out = {"sites": {}, "users": {}}
for n, code in enumerate(sites, start=1):
    hospital = f"WT-H0{n}"
    Site.objects.create(code=code, name=f"Webtest hospital {n}", hospital=hospital)
    pid = register_patient("default", cprs[code], dataset="webtests", key=key, who="webtests-seed")
    w = RegistryWriter("default", "webtests", who="webtests-seed")
    op = f"wt-op-{n}"
    w.create("operations", {"operation_id": op, "patient_id": pid, "date": f"2025-03-1{n}", "hospital": hospital,
                            "procedure_category": "vertebroplasty", "indication": "cancer_vcf"})
    for level in ("L1", "L2"):
        w.create("treated_levels", {"operation_id": op, "level": level, "cement_volume_ml": 3.5})
    w.create("complications", {"complication_id": f"wt-c-{n}", "operation_id": op, "date": f"2025-03-2{n}",
                               "type": "new_fracture", "clavien_dindo": "II", "symptomatic": True})
    w.create("imaging_findings", {"finding_id": f"wt-f-{n}", "operation_id": op, "level": "L1", "modality": "xray",
                                  "date": f"2025-03-1{n}", "leak": False})
    out["sites"][code] = {"pseudonym": pid, "operation_id": op, "complication_id": f"wt-c-{n}",
                          "finding_id": f"wt-f-{n}", "hospital": hospital}
    site = Site.objects.get(code=code)
    for role in ROLES:
        name = f"{role}-{code}"
        add_user(name, PASSWORD, role, site)
        out["users"][name] = {"role": role, "site": code}
print(json.dumps(out))
'''


@dataclass
class Seeded:
    """A registry database with its records per site (URL parameter name -> value) and users."""

    db_url: str
    records: dict[str, dict[str, str]]
    users: dict[str, dict[str, str]]
    sql_file: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def values(self, site: str) -> dict[str, str]:
        """URL parameter -> the record of ``site`` it names (``username``: that site's surgeon)."""
        rec = self.records[site]
        return {"pseudonym": rec["pseudonym"], "operation_id": rec["operation_id"],
                "complication_id": rec["complication_id"], "finding_id": rec["finding_id"],
                "username": f"surgeon-{site}", "resource_id": rec["pseudonym"], **UNSCOPED_PARAMS}


def seed(home: Path, db_url: str) -> Seeded:
    """Create the schema at ``db_url`` and fill it (one ``db init``, one seeding process)."""
    ok(run_cli(home, "db", "init", "--db", db_url, timeout=300))
    code = (f"SITES = {json.dumps(json.dumps(SITES))}\nCPRS = {json.dumps(json.dumps(CPRS))}\n"
            f"ROLES = {ROLES!r}\nPASSWORD = {PASSWORD!r}\n" + _SEED)
    got = json.loads(run_python(home, db_url, code).strip().splitlines()[-1])
    return Seeded(db_url, got["sites"], got["users"])


_TEMPLATE: dict[str, Seeded] = {}


def seeded_sqlite(home: Path, template_home: Path) -> Seeded:
    """A seeded SQLite registry at ``home``: a copy of one seeded once per session."""
    if "sqlite" not in _TEMPLATE:
        _TEMPLATE["sqlite"] = seed(template_home, f"sqlite:///{template_home / 'registry.sqlite3'}")
    tpl = _TEMPLATE["sqlite"]
    src = Path(tpl.db_url.removeprefix("sqlite:///"))
    dst = home / "registry.sqlite3"
    shutil.copyfile(src, dst)
    for suffix in ("-wal", "-shm"):
        if Path(str(src) + suffix).exists():
            shutil.copyfile(str(src) + suffix, str(dst) + suffix)
    return Seeded(f"sqlite:///{dst}", tpl.records, tpl.users)


# -- logging in ----------------------------------------------------------------------------------------------
def csrf_token(b: Browser) -> str:
    cookie = b.cookie("csrftoken")
    assert cookie is not None and cookie.value, "no CSRF cookie"
    return str(cookie.value)


_SESSIONS: dict[tuple[str, str], Browser] = {}
_TOTP: dict[tuple[str, str], tuple[bytes, int]] = {}


def totp_login(server: Server, b: Browser, username: str) -> None:
    """Log an admin whose device is set up in with a fresh code (a step not used before: django-otp refuses a
    code of a step already used)."""
    key, last = _TOTP[(server.base, username)]
    while int(time.time() // 30) <= last:
        time.sleep(0.5)
    step = int(time.time() // 30)
    resp = b.login(username, otp_token=totp(key))
    assert resp.status == 302, (username, resp.status, resp.body[:300])
    _TOTP[(server.base, username)] = (key, step)


def login_staff(server: Server, username: str, role: str, *, reuse: bool = True) -> Browser:
    """A logged-in browser (the same one again when ``reuse``).  An admin sets up TOTP through /accounts/totp/
    at the first login (its secret read from the page), and logs in with a code afterwards."""
    if reuse and (server.base, username) in _SESSIONS:
        return _SESSIONS[(server.base, username)]
    b = server.browser()
    if (server.base, username) in _TOTP:
        totp_login(server, b, username)
    else:
        resp = b.login(username)
        assert resp.status == 302, (username, resp.status, resp.body[:300])
        if role == "admin":
            import base64

            setup = b.get("/accounts/totp/")
            secret = re.search(r'<code id="totp-secret">([A-Z2-7=]+)</code>', setup.body)
            assert secret, setup.body[:500]
            key = base64.b32decode(secret.group(1))
            step = int(time.time() // 30)
            done = b.request("/accounts/totp/", {"csrfmiddlewaretoken": b.csrf(setup), "otp_token": totp(key)})
            assert done.status == 302, done.body[:500]
            _TOTP[(server.base, username)] = (key, step)
    assert b.get("/").status == 200
    if reuse:
        _SESSIONS[(server.base, username)] = b
    return b
