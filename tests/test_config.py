import os
import stat
import subprocess
import sys

import pytest
from flask import request, url_for

from webapp import create_app
from webapp.config import normalise_database_url
from webapp.permissions import ANYONE, ROUTES


def sqlite_config(tmp_path, **overrides):
    return {"DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}", **overrides}


def test_secret_key_is_generated_once_into_the_instance_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("YUNKETANG_INSTANCE_PATH", str(tmp_path))
    first = create_app(sqlite_config(tmp_path))
    second = create_app(sqlite_config(tmp_path))
    key_file = tmp_path / "secret_key"
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert len(first.config["SECRET_KEY"]) >= 48
    assert key_file.read_text().strip() == first.config["SECRET_KEY"]
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600


def test_refuses_to_start_in_production_with_a_known_dev_key(tmp_path):
    with pytest.raises(RuntimeError, match="well-known secret key"):
        create_app(sqlite_config(tmp_path, SECRET_KEY="dev"))


def test_known_dev_key_is_allowed_when_testing(tmp_path):
    app = create_app(sqlite_config(tmp_path, SECRET_KEY="dev", TESTING=True))
    assert app.config["SECRET_KEY"] == "dev"


def test_environment_overrides_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("YUNKETANG_DEFAULT_TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("YUNKETANG_BASE_URL", "https://ke.example.org/")
    monkeypatch.setenv("YUNKETANG_SECRET_KEY", "a-long-random-production-secret-value")
    app = create_app(sqlite_config(tmp_path))
    assert app.config["DEFAULT_TIMEZONE"] == "Europe/Berlin"
    assert app.config["BASE_URL"] == "https://ke.example.org"
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SECRET_KEY"] == "a-long-random-production-secret-value"


def test_defaults_are_sqlite_in_instance_shanghai_and_chinese(tmp_path, monkeypatch):
    monkeypatch.setenv("YUNKETANG_INSTANCE_PATH", str(tmp_path))
    app = create_app({"TESTING": True})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'yunketang.sqlite3'}"
    assert app.config["DEFAULT_TIMEZONE"] == "Asia/Shanghai"
    assert app.config["DEFAULT_LOCALE"] == "zh_CN"
    assert app.config["MAIL_URL"] == f"file://{tmp_path / 'mail'}"


def test_unknown_time_zone_is_refused_with_a_clear_message(tmp_path):
    with pytest.raises(RuntimeError, match="not an IANA time zone"):
        create_app(sqlite_config(tmp_path, TESTING=True, DEFAULT_TIMEZONE="Mars/Olympus"))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_postgresql_urls_use_psycopg_3(given, expected):
    assert normalise_database_url(given) == expected


def _scheme_and_host(app, monkeypatch):
    monkeypatch.setitem(ROUTES, "probe", ANYONE)

    @app.get("/_probe")
    def probe():
        home = url_for("home.index", _external=True)
        return f"{request.scheme} {request.host} {request.remote_addr} {home}"

    return (
        app.test_client()
        .get(
            "/_probe",
            headers={
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "ke.example.org",
                "X-Forwarded-For": "203.0.113.9",
            },
        )
        .get_data(as_text=True)
    )


def test_forwarded_headers_are_honoured_behind_a_trusted_proxy(tmp_path, monkeypatch):
    app = create_app(sqlite_config(tmp_path, TESTING=True, TRUSTED_PROXIES=1))
    assert (
        _scheme_and_host(app, monkeypatch)
        == "https ke.example.org 203.0.113.9 https://ke.example.org/"
    )


def test_forwarded_headers_are_ignored_without_a_trusted_proxy(tmp_path, monkeypatch):
    app = create_app(sqlite_config(tmp_path, TESTING=True))
    assert _scheme_and_host(app, monkeypatch).startswith("http localhost 127.0.0.1")


def test_create_app_does_not_import_the_scheduler(tmp_path):
    code = (
        "import sys; from webapp import create_app; "
        f"create_app({{'TESTING': True, 'DATABASE_URL': 'sqlite:///{tmp_path}/x.db'}}); "
        "bad = [m for m in sys.modules if m.startswith(('apscheduler', 'scheduler'))]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_security_headers_are_set(client):
    response = client.get("/login")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


def test_health_check_reaches_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}
