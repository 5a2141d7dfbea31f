"""Web registry commands: ``serve``, ``user add|list|disable|set-role``, ``site add|list``.

These commands configure Django with the web settings (:mod:`spinereg.web.settings`),
never the registry's standalone settings: each runs in its own process.
:func:`migrate_web` is what ``spinereg db init`` runs to create the web tables.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from spinereg._errors import DatabaseError, SpineregError

__all__ = ["migrate_web", "register"]

DbOption = Annotated[str | None, typer.Option(
    "--db", help="Database URL (sqlite:///PATH or postgresql://...). Default: SPINEREG_DATABASE_URL, "
                 "else the embedded SQLite file.")]
ROLE_HELP = "admin, surgeon, reviewer, data_manager, analyst or auditor"


def migrate_web(db: str | None) -> None:
    """Create or upgrade every table of the web registry (Django's auth, sessions, lockout, TOTP and
    the web app's own), in a process of its own configured with the web settings."""
    from spinereg.web import environment

    env = {**os.environ, **environment(db)}
    env.pop("SPINEREG_BEHIND_HTTPS", None)
    env.setdefault("SPINEREG_SECRET_KEY", secrets.token_urlsafe(64))  # migrating signs nothing: no key file
    try:
        done = subprocess.run([sys.executable, "-m", "spinereg.web", "migrate"], env=env, capture_output=True,
                              text=True, timeout=3600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DatabaseError(f"could not create the web registry's tables: {exc}") from None
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit status {done.returncode}"
        raise DatabaseError(f"could not create the web registry's tables: {last.removeprefix('error: ')}")


def _web(db: str | None) -> None:
    """Configure Django with the web settings and refuse a missing or outdated schema."""
    from spinereg.web import check_schema, configure

    configure(db)
    check_schema(db)


def _validate_password(password: str, user: Any) -> None:
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        raise SpineregError("password refused: " + " ".join(exc.messages)) from None


def _password(name: str) -> str:
    env = os.environ.get("SPINEREG_PASSWORD")
    if env is not None:
        return env
    if not sys.stdin.isatty():
        raise SpineregError(f"no password for {name!r}: set SPINEREG_PASSWORD or run the command in a terminal")
    return str(typer.prompt(f"password for {name}", hide_input=True, confirmation_prompt=True))


def _role(role: str) -> str:
    from spinereg.web.models import ROLES

    if role not in ROLES:
        raise SpineregError(f"unknown role {role!r}: use {ROLE_HELP}")
    return role


def _site(code: str | None, role: str) -> Any:
    from spinereg.web.models import NATIONAL_ROLES, Site

    if code is None:
        if role not in NATIONAL_ROLES:
            raise SpineregError(f"role {role!r} works at one site: give --site CODE (`spinereg site list`)")
        return None
    site = Site.objects.filter(code=code).first()
    if site is None:
        raise SpineregError(f"no site {code!r}: add it first with `spinereg site add {code} --name ... "
                            "--hospital ...`")
    return site


def _user(name: str) -> Any:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(username=name).first()
    if user is None:
        raise SpineregError(f"no user {name!r} (`spinereg user list` shows them)")
    return user


def _demo_registry(directory: Path) -> str:
    """The demo's registry URL: DIR/registry.sqlite3, with the web tables, and built (synthetic) when empty.
    Built in processes of their own: this one is about to be configured with the web settings."""
    from spinereg.cli._demo import PATIENTS, SEED

    db_file = (directory / "registry.sqlite3").resolve()
    url = f"sqlite:///{db_file}"
    for args in (["db", "init", "--db", url], ["synth", "--patients", str(PATIENTS), "--seed", str(SEED),
                                                "--db", url]):
        if args[0] == "synth" and _has_patients(db_file):
            break
        done = subprocess.run([sys.executable, "-m", "spinereg", *args], capture_output=True, text=True,
                              check=False, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()] or [f"exit {done.returncode}"]
            raise SpineregError(f"could not build the demo registry in {db_file}: {lines[-1].removeprefix('error: ')}")
    return url


def _has_patients(db_file: Path) -> bool:
    import sqlite3

    try:
        with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True) as con:
            return bool(con.execute("SELECT EXISTS (SELECT 1 FROM spinereg_patients)").fetchone()[0])
    except sqlite3.Error:
        return False


def _demo_users() -> str:
    """One site per hospital and one demo user per role (site-bound roles at the largest hospital), all
    with a new random password; only on a registry whose every dataset is synthetic."""
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.db.models import Count

    from spinereg.registry.models import Dataset, Operation
    from spinereg.web.models import NATIONAL_ROLES, ROLES, Site, StaffProfile

    if not Dataset.objects.exists() or Dataset.objects.filter(synthetic=False).exists():
        raise SpineregError("--demo needs a registry that holds synthetic data only: demo users with a printed "
                            "password never go on real data")
    hospitals = list(Operation.objects.values("hospital").annotate(n=Count("operation_id")).order_by("-n", "hospital"))
    password = secrets.token_urlsafe(12)
    model = get_user_model()
    with transaction.atomic():
        for h in hospitals:
            code = re.sub(r"[^a-z0-9]+", "-", str(h["hospital"]).lower()).strip("-")[:40] or "site"
            Site.objects.get_or_create(code=code, defaults={"name": h["hospital"], "hospital": h["hospital"]})
        largest = Site.objects.filter(hospital=hospitals[0]["hospital"]).first() if hospitals else None
        for role in ROLES:
            user, _new = model.objects.get_or_create(username=f"demo-{role}")
            user.set_password(password)
            user.is_active = True
            user.save()
            StaffProfile.objects.update_or_create(
                user=user, defaults={"role": role, "site": None if role in NATIONAL_ROLES else largest})
    return password


def _gunicorn_major() -> int:
    from importlib.metadata import version

    try:
        return int(version("gunicorn").split(".")[0])
    except (ValueError, ImportError):
        return 0


def register(app: typer.Typer) -> None:
    """Add the web registry's commands to ``app``."""
    from spinereg.cli._app import err, out

    user_app = typer.Typer(help="Manage the web registry's staff users.", no_args_is_help=True)
    site_app = typer.Typer(help="Manage the web registry's sites (data access groups).", no_args_is_help=True)
    app.add_typer(user_app, name="user")
    app.add_typer(site_app, name="site")

    @user_app.command("add")
    def user_add(
        name: Annotated[str, typer.Argument(help="User name (login).")],
        role: Annotated[str, typer.Option("--role", help=ROLE_HELP)],
        site: Annotated[str | None, typer.Option(
            "--site", help="Site code; national roles (admin, analyst, auditor) may omit it.")] = None,
        db: DbOption = None,
    ) -> None:
        """Create a staff user (password from SPINEREG_PASSWORD, else a prompt)."""
        _web(db)
        from django.contrib.auth import get_user_model
        from django.db import transaction

        from spinereg.web.models import StaffProfile

        model = get_user_model()
        _role(role)
        where = _site(site, role)
        if model.objects.filter(username=name).exists():
            raise SpineregError(f"user {name!r} exists already")
        user = model(username=name)
        password = _password(name)
        _validate_password(password, user)
        user.set_password(password)
        with transaction.atomic():
            user.save()
            StaffProfile.objects.create(user=user, role=role, site=where)
        out.print(f"user {name} added: role {role}" + (f", site {where.code}" if where else ", all sites"),
                  markup=False)

    @user_app.command("list")
    def user_list(db: DbOption = None) -> None:
        """List the staff users: role, site, active, second factor."""
        from rich.table import Table

        _web(db)
        from django.contrib.auth import get_user_model
        from django_otp.plugins.otp_totp.models import TOTPDevice

        with_totp = set(TOTPDevice.objects.filter(confirmed=True).values_list("user_id", flat=True))
        table = Table("user", "role", "site", "active", "TOTP", "last login")
        for user in get_user_model().objects.select_related("staff__site").order_by("username"):
            profile = getattr(user, "staff", None)
            table.add_row(user.username, profile.role if profile else "-",
                          profile.site.code if profile and profile.site else "(all)",
                          "yes" if user.is_active else "no", "yes" if user.pk in with_totp else "no",
                          user.last_login.strftime("%Y-%m-%d %H:%M") if user.last_login else "")
        out.print(table)

    @user_app.command("disable")
    def user_disable(name: Annotated[str, typer.Argument(help="User name.")], db: DbOption = None) -> None:
        """Disable a user: no more logins, and open sessions end at their next request."""
        _web(db)
        user = _user(name)
        user.is_active = False
        user.save(update_fields=["is_active"])
        out.print(f"user {name} disabled", markup=False)

    @user_app.command("set-role")
    def user_set_role(
        name: Annotated[str, typer.Argument(help="User name.")],
        role: Annotated[str, typer.Argument(help=ROLE_HELP)],
        site: Annotated[str | None, typer.Option("--site", help="Site code (default: keep the user's).")] = None,
        db: DbOption = None,
    ) -> None:
        """Change a user's role (and site)."""
        _web(db)
        from spinereg.web.models import StaffProfile

        user = _user(name)
        _role(role)
        profile = StaffProfile.objects.filter(user=user).first()
        current = profile.site.code if profile and profile.site else None
        where = _site(site if site is not None else current, role)
        StaffProfile.objects.update_or_create(user=user, defaults={"role": role, "site": where})
        out.print(f"user {name}: role {role}" + (f", site {where.code}" if where else ", all sites"), markup=False)

    @site_app.command("add")
    def site_add(
        code: Annotated[str, typer.Argument(help="Short code (letters, digits, - and _).")],
        name: Annotated[str, typer.Option("--name", help="Display name.")],
        hospital: Annotated[str, typer.Option("--hospital", help="The operations' hospital value.")],
        department: Annotated[str, typer.Option(
            "--department", help="The operations' department value (default: the whole hospital).")] = "",
        db: DbOption = None,
    ) -> None:
        """Add a site: a hospital department whose records its staff see."""
        _web(db)
        from django.core.exceptions import ValidationError

        from spinereg.web.models import Site

        site = Site(code=code, name=name, hospital=hospital, department=department)
        try:
            site.full_clean()
        except ValidationError as exc:
            raise SpineregError("site refused: " + "; ".join(f"{k}: {' '.join(v)}"
                                                            for k, v in exc.message_dict.items())) from None
        site.save()
        out.print(f"site {code} added", markup=False)

    @site_app.command("list")
    def site_list(db: DbOption = None) -> None:
        """List the sites."""
        from rich.table import Table

        _web(db)
        from spinereg.web.models import Site

        table = Table("code", "name", "hospital", "department", "users")
        for s in Site.objects.order_by("code"):
            table.add_row(s.code, s.name, s.hospital, s.department or "(all)", str(s.staff.count()))
        out.print(table)

    @app.command("serve")
    def serve(
        db: DbOption = None,
        host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", help="Port.", min=1, max=65535)] = 8000,
        workers: Annotated[int, typer.Option("--workers", help="gunicorn worker processes.", min=1)] = 2,
        behind_https: Annotated[bool, typer.Option(
            "--behind-https", help="A TLS proxy serves the site: Secure cookies, HSTS, trust X-Forwarded-Proto."
        )] = False,
        demo: Annotated[bool, typer.Option(
            "--demo", help="Serve the demo's synthetic registry (DIR/registry.sqlite3, built when missing) with "
                           "one demo user per role and a password printed at start.")] = False,
        directory: Annotated[Path, typer.Option("--dir", help="The demo's directory (with --demo).")]
            = Path("spinereg-demo"),
    ) -> None:
        """Run the web registry under gunicorn (static files by whitenoise)."""
        from spinereg.registry import resolve_database_url, safe_url
        from spinereg.web import check_schema, configure

        if demo:
            if db is not None:
                raise SpineregError("--demo serves the demo's own registry: leave out --db (or leave out --demo)")
            db = _demo_registry(directory)
        configure(db, behind_https=behind_https)
        check_schema(db)
        if demo:
            password = _demo_users()
            from spinereg.registry.models import Dataset

            # what the demo users enter joins the demo's synthetic dataset, so the demo stays synthetic
            # (and --demo serves it again next time)
            first = Dataset.objects.filter(synthetic=True).order_by("id").first()
            if first is not None:
                os.environ["SPINEREG_WEB_DATASET"] = first.name
            err.print("SYNTHETIC DATA: demo users demo-admin, demo-surgeon, demo-reviewer, demo-data_manager, "
                      f"demo-analyst, demo-auditor; password for this run: {password}", markup=False)
        from django.db import connections

        connections.close_all()
        bind = f"[{host}]" if ":" in host else host
        err.print(f"web registry on http://{bind}:{port}/ (database {safe_url(resolve_database_url(db))}); "
                  "Ctrl-C stops it", markup=False)
        args = [sys.executable, "-m", "gunicorn", "spinereg.web.wsgi:application", "--bind", f"{bind}:{port}",
                "--workers", str(workers), "--timeout", "120", "--graceful-timeout", "10"]
        if _gunicorn_major() >= 27:
            args.append("--no-control-socket")  # one per user by default: a second server would clash
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, args)
