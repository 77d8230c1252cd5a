"""The production files in deploy/ are checked on this Debian: the systemd units by
`systemd-analyze verify` (with the project folder in place of /srv/yunketang), and gunicorn
loads deploy/gunicorn.conf.py and serves a request. (nginx: tests/streaming/test_site_config.py
and test_deploy_config.py.)"""

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import require
from tests.reminders.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
SYSTEMD = ROOT / "deploy" / "systemd"
UNITS = sorted(path for path in SYSTEMD.iterdir() if path.suffix in (".service", ".timer"))


@pytest.mark.parametrize("unit", UNITS, ids=[unit.name for unit in UNITS])
def test_the_systemd_units_verify(unit, tmp_path):
    analyze = shutil.which("systemd-analyze")
    require(analyze is not None, "systemd-analyze is not installed")
    require((ROOT / ".venv" / "bin" / "gunicorn").exists(), "run from the project's .venv")
    for each in UNITS:  # a timer is verified beside the service it starts
        (tmp_path / each.name).write_text(each.read_text().replace("/srv/yunketang", str(ROOT)))
    # A template (yunketang-worker@.service) is verified as one of its instances.
    name = unit.name.replace("@.", "@1.")
    done = subprocess.run([analyze, "verify", str(tmp_path / name)], capture_output=True, text=True)
    problems = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        # A container has no system manager to ask about other units; not about this file.
        if line.strip() and "Failed to connect" not in line and "bus" not in line.lower()
    ]
    assert problems == [], "\n".join(problems)


def test_gunicorn_loads_the_deploy_config_and_serves(tmp_path):
    require((ROOT / ".venv" / "bin" / "gunicorn").exists(), "run from the project's .venv")
    port = free_port()
    env = {
        **os.environ,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "1",
        "YUNKETANG_DATABASE_URL": f"sqlite:///{tmp_path / 'app.sqlite3'}",
        "YUNKETANG_INSTANCE_PATH": str(tmp_path),
        "YUNKETANG_SECRET_KEY": "deploy-test-secret-key-0123456789abcdef",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200 and b'"ok"' in r.read()
                    break
            except OSError:
                assert server.poll() is None, server.stdout.read().decode()
                assert time.monotonic() < deadline, "gunicorn did not answer within 30 s"
                time.sleep(0.2)
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=30)[0].decode()
    assert server.returncode == 0, output
    assert "GET /healthz" in output  # the config's access log goes to stdout


# journald.conf(5)'s [Journal] options (systemd 252, Debian 12).
JOURNALD_OPTIONS = {
    "Storage", "Compress", "Seal", "SplitMode", "SyncIntervalSec", "RateLimitIntervalSec",
    "RateLimitBurst", "SystemMaxUse", "SystemKeepFree", "SystemMaxFileSize", "SystemMaxFiles",
    "RuntimeMaxUse", "RuntimeKeepFree", "RuntimeMaxFileSize", "RuntimeMaxFiles",
    "MaxRetentionSec", "MaxFileSec", "ForwardToSyslog", "ForwardToKMsg", "ForwardToConsole",
    "ForwardToWall", "MaxLevelStore", "MaxLevelSyslog", "MaxLevelKMsg", "MaxLevelConsole",
    "MaxLevelWall", "ReadKMsg", "Audit", "TTYPath", "LineMax",
}  # fmt: skip


def test_the_journal_drop_in_names_only_journald_options():
    import configparser

    parser = configparser.ConfigParser()
    parser.optionxform = str
    parser.read(ROOT / "deploy" / "journald" / "yunketang.conf")
    assert parser.sections() == ["Journal"]
    assert set(parser["Journal"]) <= JOURNALD_OPTIONS
    assert parser["Journal"]["MaxRetentionSec"] == "3month"


def test_the_example_environment_names_only_settings_the_app_has(monkeypatch, tmp_path):
    from webapp import create_app

    names = {}
    for line in (ROOT / "deploy" / "env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _equals, value = line.partition("=")
            names[name] = value
    assert all(name.startswith("YUNKETANG_") for name in names)
    for name, value in names.items():
        monkeypatch.setenv(name, value or "x" * 48)
    monkeypatch.setenv("YUNKETANG_INSTANCE_PATH", str(tmp_path))
    app = create_app()
    for name in names:
        assert name.removeprefix("YUNKETANG_") in app.config, name
    assert app.config["BASE_URL"] == "https://ke.example.org"
