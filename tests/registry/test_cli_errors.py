"""The registry commands with a user's mistakes: one clear line, exit 1, no traceback,
nothing created; and the audit and db info commands."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pandas as pd
import pytest

from tests.registry.test_bad_input import write_files
from tests.registry.test_cli_registry import run


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SPINEREG_DATABASE_URL", "SPINEREG_SITE_KEY")}
    return {**env, "SPINEREG_HOME": str(tmp_path / "home"), **extra}


def one_error(res: object, *needles: str) -> str:
    assert res.returncode == 1, (res.stdout, res.stderr)  # type: ignore[attr-defined]
    err = res.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in err, err
    assert err.startswith("error: "), err
    for n in needles:
        assert n in err, err
    return str(err)


def test_unreachable_postgresql_is_one_line(tmp_path: Path) -> None:
    # loopback port 1: nothing listens there, the connection is refused at once
    res = run(["export", str(tmp_path / "out"), "--db", "postgresql://nobody:secret@127.0.0.1:1/registry"],
              env_for(tmp_path))
    err = one_error(res, "cannot open the registry database", "127.0.0.1:1")
    assert "secret" not in err  # the password is never printed
    assert not (tmp_path / "out").exists()


def test_unwritable_registry_path_is_one_line(tmp_path: Path) -> None:
    one_error(run(["db", "init", "--db", "sqlite:////proc/spinereg-nope/registry.sqlite3"], env_for(tmp_path)),
              "/proc/spinereg-nope")


def test_export_from_a_registry_that_does_not_exist(tmp_path: Path) -> None:
    typo = tmp_path / "typo.sqlite3"
    one_error(run(["export", str(tmp_path / "out"), "--db", f"sqlite:///{typo}"], env_for(tmp_path)),
              "no registry at", str(typo))
    assert not typo.exists()
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("value", "needle"), [("2017-13-45", "not a calendar date"),
                                               ("03-04-2017", "YYYY-MM-DD")])
def test_extract_date_must_be_iso_and_real(tmp_path: Path, value: str, needle: str) -> None:
    files = [str(p) for p in write_files(tmp_path / "f")]
    db = tmp_path / "r.sqlite3"
    for cmd in ("validate", "import"):
        one_error(run([cmd, "--mapping", "tidy", "--extract-date", value, "--db", f"sqlite:///{db}", *files],
                      env_for(tmp_path)), "--extract-date", needle)
    assert not db.exists()


def test_export_into_an_unwritable_directory(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    env = env_for(tmp_path)
    assert run(["db", "init", "--db", db], env).returncode == 0
    one_error(run(["export", "/proc/spinereg-out", "--db", db], env), "/proc/spinereg-out")


def test_validate_creates_no_database_and_no_key_file(tmp_path: Path) -> None:
    files = [str(p) for p in write_files(tmp_path / "f")]
    db = tmp_path / "new.sqlite3"
    res = run(["validate", "--mapping", "tidy", *files], env_for(tmp_path))
    assert res.returncode == 0, res.stderr
    one_error(run(["validate", "--mapping", "tidy", "--db", f"sqlite:///{db}", *files], env_for(tmp_path)),
              "no registry at")
    assert not db.exists()
    assert not (tmp_path / "home").exists()  # no key file, no default registry


def test_audit_and_db_info(db_url: str, tmp_path: Path) -> None:
    env = env_for(tmp_path, SPINEREG_DATABASE_URL=db_url, SPINEREG_SITE_KEY="ab" * 32)
    files = [str(p) for p in write_files(tmp_path / "a")]
    assert run(["import", "--mapping", "tidy", *files], env).returncode == 0
    changed = [str(p) for p in write_files(tmp_path / "b", {("operations", 0): {"asa_class": "4"}})]
    # without --update: refused, the change named; with it: applied and listed
    refused = run(["import", "--mapping", "tidy", *changed], env)
    assert refused.returncode == 1 and "O1: asa_class 2 -> 4" in refused.stderr, refused.stderr
    dry = run(["validate", "--mapping", "tidy", "--db", db_url, *changed], env)
    assert dry.returncode == 0 and "would change operations O1: asa_class 2 -> 4" in dry.stderr, dry.stderr
    done = run(["import", "--mapping", "tidy", "--update", *changed], env)
    assert done.returncode == 0 and "1 updated" in done.stdout, done.stderr
    res = run(["audit", "operations", "O1", "--csv", "-"], env)
    assert res.returncode == 0, res.stderr
    trail = pd.read_csv(io.StringIO(res.stdout))
    assert list(trail["action"]) == ["create", "update"]
    assert trail["old"].iloc[1] == '{"asa_class": 2}' and trail["new"].iloc[1] == '{"asa_class": 4}'
    assert '"asa_class": 2' in trail["new"].iloc[0]  # the created values, from the import's snapshot
    by_batch = pd.read_csv(io.StringIO(run(["audit", "--batch", str(int(trail["batch"].iloc[1])), "--csv", "-"],
                                           env).stdout))
    assert list(by_batch["key"]) == ["O1"]
    nobody = run(["audit", "--user", "someone-else", "--csv", "-"], env)
    assert pd.read_csv(io.StringIO(nobody.stdout)).empty
    late = run(["audit", "--since", "2999-01-01", "--csv", "-"], env)
    assert pd.read_csv(io.StringIO(late.stdout)).empty
    one_error(run(["audit", "--since", "01-01-2020"], env), "--since")
    info = run(["db", "info"], env)
    assert info.returncode == 0, info.stderr
    from spinereg.registry import key_fingerprint

    assert key_fingerprint(bytes.fromhex("ab" * 32)) in info.stdout
    assert "tidy" in info.stdout
