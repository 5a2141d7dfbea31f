"""The web registry served by gunicorn (``spinereg serve``), driven over HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.web.conftest import PASSWORD, Server, health


def _own_and_other(server: Server) -> tuple[str, str]:
    """A patient operated at SYN-H01 (site h01) and one operated only elsewhere, from the database itself."""
    own = server.sql("SELECT patient_id FROM spinereg_operations WHERE hospital = 'SYN-H01' ORDER BY patient_id")
    other = server.sql("SELECT patient_id FROM spinereg_operations WHERE patient_id NOT IN "
                       "(SELECT patient_id FROM spinereg_operations WHERE hospital = 'SYN-H01') ORDER BY patient_id")
    assert own and other
    return own[0][0], other[0][0]


def test_healthz_needs_no_login(synthetic_server: Server) -> None:
    assert health(synthetic_server) == {"status": "ok", "schema": "current"}


@pytest.mark.parametrize("path", ["/", "/?after=x", "/patients/anything/", "/accounts/totp/", "/no/such/page/"])
def test_anonymous_user_is_sent_to_login(synthetic_server: Server, path: str) -> None:
    resp = synthetic_server.browser().get(path)
    assert resp.status == 302
    assert resp.location().startswith("/accounts/login/?next=")


def test_post_without_csrf_token_is_refused(synthetic_server: Server) -> None:
    b = synthetic_server.browser()
    b.get("/accounts/login/")  # has the CSRF cookie, but the form's token is left out
    resp = b.request("/accounts/login/", {"username": "surgeon1", "password": PASSWORD})
    assert resp.status == 403
    assert b.cookie("sessionid") is None
    # a view without its own csrf_protect (the language switch) is covered by the middleware
    assert b.request("/i18n/setlang/", {"language": "da", "next": "/"}).status == 403
    page = b.get("/accounts/login/")
    assert b.request("/i18n/setlang/", {"language": "da", "next": "/accounts/login/",
                                        "csrfmiddlewaretoken": b.csrf(page)}).status == 302


def test_security_headers_and_cookies(synthetic_server: Server) -> None:
    b = synthetic_server.browser()
    page = b.get("/accounts/login/")
    assert page.status == 200
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in page.headers  # plain HTTP: no HSTS (see the PostgreSQL test)
    assert b.login("surgeon1").status == 302
    raw = [v for k, v in b.get("/").headers.items() if k.lower() == "set-cookie"]
    session = next(c for c in raw if c.startswith("sessionid="))
    assert "HttpOnly" in session and "SameSite=Lax" in session
    assert "Secure" not in session
    assert b.get("/static/web/style.css").status == 200  # whitenoise, no login


def test_argon2_hash_stored(synthetic_server: Server) -> None:
    (hashed,) = synthetic_server.sql("SELECT password FROM auth_user WHERE username = 'surgeon1'")[0]
    assert hashed.startswith("argon2$argon2id$")
    assert PASSWORD not in hashed


def test_login_gives_a_new_session_with_a_30_minute_idle_expiry(synthetic_server: Server) -> None:
    b = synthetic_server.browser()
    b.get("/accounts/login/")
    assert b.login("surgeon1").status == 302
    cookie = b.cookie("sessionid")
    assert cookie is not None
    assert b.get("/").status == 200
    (expires,) = synthetic_server.sql("SELECT expire_date FROM django_session WHERE session_key = ?",
                                      cookie.value)[0]
    left = datetime.fromisoformat(expires).replace(tzinfo=UTC) - datetime.now(UTC)
    assert timedelta(minutes=28) < left <= timedelta(minutes=30, seconds=5)


def test_site_sees_own_patients_only(synthetic_server: Server) -> None:
    own, other = _own_and_other(synthetic_server)
    b = synthetic_server.browser()
    assert b.login("surgeon1").status == 302
    home = b.get("/")
    assert home.status == 200
    (n_site,) = synthetic_server.sql("SELECT COUNT(DISTINCT patient_id) FROM spinereg_operations "
                                     "WHERE hospital = 'SYN-H01'")[0]
    assert f"{n_site} patients" in home.body
    rows = re.findall(r'<a href="/patients/([^/"]+)/">', home.body)
    assert len(rows) == min(50, n_site)
    assert rows == sorted(rows)
    assert other not in home.body
    assert b.get(f"/patients/{own}/").status == 200
    assert b.get(f"/patients/{other}/").status == 404
    assert b.get("/patients/no-such-patient/").status == 404
    # the other site's surgeon: the other way round
    b2 = synthetic_server.browser()
    assert b2.login("surgeon2").status == 302
    only_h01 = synthetic_server.sql(
        "SELECT patient_id FROM spinereg_operations GROUP BY patient_id "
        "HAVING SUM(hospital = 'SYN-H02') = 0 AND SUM(hospital = 'SYN-H01') > 0")[0][0]
    assert b2.get(f"/patients/{only_h01}/").status == 404


def test_synthetic_banner_and_danish(synthetic_server: Server) -> None:
    en = synthetic_server.browser("en").get("/accounts/login/")
    assert "SYNTHETIC DATA" in en.body and ">Log in<" in en.body
    da = synthetic_server.browser("da").get("/accounts/login/")
    assert da.headers["Content-Language"] == "da"
    assert "SYNTETISKE DATA" in da.body and ">Log ind<" in da.body and "Adgangskode" in da.body
    assert '<html lang="da">' in da.body


def test_lockout_after_five_failures(synthetic_server: Server) -> None:
    b = synthetic_server.browser()
    for _ in range(5):
        resp = b.login("lockme", "a-wrong-password-123")
        assert resp.status in (200, 429)
    locked = b.login("lockme")  # the right password, too late
    assert locked.status == 429
    assert "locked" in locked.body
    assert b.cookie("sessionid") is None
    # another account is not affected
    assert synthetic_server.browser().login("surgeon2").status == 302
    # authentication events are logged, without the user name
    log = synthetic_server.log.read_text()
    assert "login failed" in log and "account locked out" in log and "login user_id=" in log
    assert "lockme" not in log and "surgeon2" not in log


def test_admin_must_set_up_totp_then_logs_in_with_it(synthetic_server: Server) -> None:
    from django_otp.oath import totp

    b = synthetic_server.browser()
    assert b.login("admin1").status == 302
    for path in ("/", "/patients/x/"):
        assert b.get(path).location() == "/accounts/totp/"
    setup = b.get("/accounts/totp/")
    assert setup.status == 200
    secret = re.search(r'<code id="totp-secret">([A-Z2-7=]+)</code>', setup.body)
    assert secret
    key = base64.b32decode(secret.group(1))
    wrong = f"{(totp(key) + 1) % 1_000_000:06d}"
    assert b.request("/accounts/totp/", {"csrfmiddlewaretoken": b.csrf(setup), "otp_token": wrong}).status == 200
    assert b.get("/").location() == "/accounts/totp/"
    time.sleep(1.2)  # django-otp throttles a device for 1 s after a wrong code
    confirmed = b.request("/accounts/totp/", {"csrfmiddlewaretoken": b.csrf(setup), "otp_token": f"{totp(key):06d}"})
    assert confirmed.status == 302
    assert b.get("/").status == 200
    # a new login needs the code now
    b2 = synthetic_server.browser()
    refused = b2.login("admin1")
    assert refused.status == 200 and "Enter the code from your authenticator app." in refused.body
    # the next time step's code (the device accepts one step of drift; the last one is used up)
    assert b2.login("admin1", otp_token=f"{totp(key, drift=1):06d}").status == 302
    home = b2.get("/")
    assert home.status == 200
    assert "200 patients" in home.body  # a national role sees every site
    first = re.findall(r'<a href="/patients/([^/"]+)/">', home.body)
    everyone = [r[0] for r in synthetic_server.sql("SELECT patient_id FROM spinereg_patients ORDER BY patient_id")]
    last_page = b2.get(f"/?after={everyone[149]}").body
    last = re.findall(r'<a href="/patients/([^/"]+)/">', last_page)
    assert first == everyone[:50] and last == everyone[150:]
    assert 'rel="next"' not in last_page
