"""Any install serves the Chinese interface: the build itself compiles the catalogs, and
a wheel holds them with the templates and static files; the project's metadata gives no
deprecation warnings; `flask` in the project folder finds the app (.flaskenv)."""

import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo

ROOT = Path(__file__).resolve().parent.parent
LEFT_OUT = shutil.ignore_patterns(
    ".git", ".venv", "*.mo", "instance", "__pycache__", "build", "*.egg-info", "test-artifacts",
    ".pytest_cache", ".ruff_cache", "docs", "bench",
)  # fmt: skip

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("TEST_DATABASE_URL")),
    reason="packaging does not depend on the database: checked on the SQLite pass",
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """A wheel built from the sources as a fresh clone has them (no compiled catalogs)."""
    source = tmp_path_factory.mktemp("source") / "yunketang"
    shutil.copytree(ROOT, source, ignore=LEFT_OUT)
    assert not list(source.rglob("*.mo"))
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    [path] = out.glob("yunketang-*.whl")
    return path, built.stdout + built.stderr


def test_a_wheel_holds_the_compiled_catalogs_templates_and_static_files(wheel):
    path, _log = wheel
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        catalog = read_mo(
            io.BytesIO(archive.read("webapp/translations/zh_Hans_CN/LC_MESSAGES/messages.mo"))
        )
    assert catalog.get("Sign-in sheets to print (PDF)").string == "打印签到表（PDF）"
    assert "webapp/translations/en/LC_MESSAGES/messages.mo" in names
    assert "webapp/templates/base.html" in names and "webapp/static/app.css" in names
    assert "webapp/static/vendor/hls.js/hls.light.min.js" in names
    assert "webapp/migrations/env.py" in names


def test_building_prints_no_deprecation_warning_about_the_project_s_metadata(wheel):
    _path, log = wheel
    assert "Deprecat" not in log, [line for line in log.splitlines() if "Deprecat" in line]


def test_flask_in_the_project_folder_finds_the_app():
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLASK_")}
    flask = Path(sys.executable).parent / "flask"
    result = subprocess.run(
        [str(flask), "db", "--help"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "upgrade" in result.stdout
