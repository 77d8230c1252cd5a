"""deploy/nginx/streaming.conf is what `flask streaming nginx-config` writes (with a
placeholder for the secret), and real nginx accepts it."""

import shutil
import subprocess
from pathlib import Path

from tests.helpers import require
from webapp.streaming.cli import RTMP_MODULE, render_nginx_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "nginx" / "streaming.conf"
EXAMPLE_ARGS = dict(
    app_url="http://127.0.0.1:8000",
    http_listen="0.0.0.0:80",
    rtmp_listen="1935",
    user="yunketang",
    secret="REPLACED-BY-flask-streaming-nginx-config",
    args=["--app", "http://127.0.0.1:8000", "--http", "0.0.0.0:80", "--rtmp", "1935",
          "--user", "yunketang", "--folder", "/var/lib/yunketang/streaming"],
)  # fmt: skip


def test_the_deploy_example_is_the_command_s_output(app, tmp_path, monkeypatch):
    monkeypatch.setattr(Path, "mkdir", lambda *args, **kwargs: None)  # no /var/lib here
    text = render_nginx_config(folder=Path("/var/lib/yunketang/streaming"), **EXAMPLE_ARGS)
    assert EXAMPLE.read_text() == text, "re-render deploy/nginx/streaming.conf (see the test)"


def test_nginx_accepts_the_rendered_configuration(app, tmp_path):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    require(Path(nginx).exists() and Path(RTMP_MODULE).exists(), "nginx-rtmp is not installed")
    config = tmp_path / "nginx.conf"
    config.write_text(
        render_nginx_config(
            app_url="http://127.0.0.1:5000",
            http_listen="127.0.0.1:18080",
            rtmp_listen="127.0.0.1:1935",
            folder=tmp_path / "streaming",
        )
    )
    done = subprocess.run(
        [nginx, "-t", "-c", str(config), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
