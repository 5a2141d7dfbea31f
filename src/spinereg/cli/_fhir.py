"""FHIR API commands: ``token create|revoke|list`` (bearer tokens of the ``/fhir/`` API).

Like the ``user`` commands, these configure Django with the web settings in
their own process.  ``token create`` prints the clear token once, as the last
word of its output; only its SHA-256 hash is stored.
"""

from __future__ import annotations

from typing import Annotated

import typer

from spinereg._errors import SpineregError
from spinereg.cli._web import DbOption, _user, _web

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``token`` commands to ``app``."""
    from spinereg.cli._app import out

    token_app = typer.Typer(help="Manage bearer tokens of the FHIR API (/fhir/).", no_args_is_help=True)
    app.add_typer(token_app, name="token")

    @token_app.command("create")
    def token_create(
        name: Annotated[str, typer.Argument(help="The staff user the token acts as (its role and site).")],
        label: Annotated[str, typer.Option("--label", help="What the token is for (shown by token list).")] = "",
        db: DbOption = None,
    ) -> None:
        """Create a bearer token for USER; prints it once (the last word of the output)."""
        _web(db)
        from spinereg.fhir_api.models import ApiToken

        user = _user(name)
        if getattr(user, "staff", None) is None or not user.is_active:
            raise SpineregError(f"user {name!r} is not an active staff user: a token acts with a staff role")
        record, token = ApiToken.issue(user, label)
        out.print(f"token {record.pk} for {name} (role {user.staff.role}); it is shown only now: {token}",
                  markup=False)

    @token_app.command("revoke")
    def token_revoke(
        token_id: Annotated[int, typer.Argument(help="The token's number (spinereg token list).")],
        db: DbOption = None,
    ) -> None:
        """Revoke a token: it is refused from its next request."""
        _web(db)
        from django.utils import timezone

        from spinereg.fhir_api.models import ApiToken

        record = ApiToken.objects.filter(pk=token_id).first()
        if record is None:
            raise SpineregError(f"no token {token_id} (`spinereg token list` shows them)")
        if record.revoked is None:
            record.revoked = timezone.now()
            record.save(update_fields=["revoked"])
        out.print(f"token {token_id} revoked", markup=False)

    @token_app.command("list")
    def token_list(db: DbOption = None) -> None:
        """List the tokens: number, user, start of the token, label, created, last used, revoked."""
        from rich.table import Table

        _web(db)
        from spinereg.fhir_api.models import ApiToken

        def when(t: object) -> str:
            return t.strftime("%Y-%m-%d %H:%M") if t is not None else ""  # type: ignore[attr-defined]

        table = Table("id", "user", "token", "label", "created", "last used", "revoked")
        for r in ApiToken.objects.select_related("user").order_by("id"):
            table.add_row(str(r.pk), r.user.get_username(), r.hint + "...", r.label, when(r.created),
                          when(r.last_used), when(r.revoked))
        out.print(table)
