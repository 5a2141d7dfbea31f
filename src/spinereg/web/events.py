"""Authentication events, logged without personal data.

Each line names the event and the user's numeric id (never the user name, the
address or any patient identifier).  A failed login names no one: the user
name typed may be mistyped personal data, or a password.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("spinereg.web.auth")
#: The session key holding the login time (seconds since the epoch).
LOGIN_AT = "spinereg_login_at"


def _logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    import time

    if request is not None and hasattr(request, "session"):
        request.session[LOGIN_AT] = time.time()  # for the absolute session timeout
    log.info("login user_id=%s", user.pk)


def _logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    log.info("logout user_id=%s", getattr(user, "pk", None))


def _login_failed(sender: Any, credentials: Any, request: Any = None, **kwargs: Any) -> None:
    log.warning("login failed")


def _locked_out(sender: Any, request: Any, username: Any, ip_address: Any, **kwargs: Any) -> None:
    log.warning("account locked out after repeated failed logins")


def connect() -> None:
    """Connect the handlers (from the app's ``ready``)."""
    from axes.signals import user_locked_out
    from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed

    user_logged_in.connect(_logged_in, dispatch_uid="spinereg.web.login")
    user_logged_out.connect(_logged_out, dispatch_uid="spinereg.web.logout")
    user_login_failed.connect(_login_failed, dispatch_uid="spinereg.web.login_failed")
    user_locked_out.connect(_locked_out, dispatch_uid="spinereg.web.locked_out")
