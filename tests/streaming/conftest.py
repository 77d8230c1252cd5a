"""A real nginx with Debian's RTMP module on 127.0.0.1, configured by the same
`render_nginx_config` as `flask streaming nginx-config`, in front of the test app served
in a thread; ffmpeg publishes to it. Skipped by hand without them, failed under CI=true."""

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import require
from webapp.streaming.cli import RTMP_MODULE, render_nginx_config

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
FFMPEG = shutil.which("ffmpeg")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, *, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@dataclass
class NginxRtmp:
    http: str  # http://127.0.0.1:port, the app and HLS through nginx
    rtmp: str  # rtmp://127.0.0.1:port/live
    folder: Path
    process: subprocess.Popen

    def publish(self, name: str, key: str, *, seconds: float = 30, extra=()) -> subprocess.Popen:
        """ffmpeg pushes a test pattern with a tone, H.264/AAC, as OBS would (its messages go
        to ffmpeg.log in the folder)."""
        with open(self.folder / "ffmpeg.log", "a") as log:
            return self._popen(name, key, seconds, extra, log)

    def _popen(self, name, key, seconds, extra, log) -> subprocess.Popen:
        return subprocess.Popen(
            [
                FFMPEG, "-nostdin", "-loglevel", "error", "-re",
                "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=15:duration={seconds}",
                "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}",
                "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
                "-pix_fmt", "yuv420p", "-g", "15", "-c:a", "aac", "-b:a", "64k", *extra,
                "-f", "flv", f"{self.rtmp}/{name}?key={key}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )  # fmt: skip

    def error_log(self) -> str:
        log = self.folder / "nginx-error.log"
        return log.read_text(errors="replace") if log.exists() else ""


def require_streaming_tools() -> None:
    require(Path(NGINX).exists(), "nginx is not installed (apt-get install nginx)")
    require(Path(RTMP_MODULE).exists(), "the RTMP module is not installed (libnginx-mod-rtmp)")
    require(FFMPEG is not None, "ffmpeg is not installed (apt-get install ffmpeg)")


@pytest.fixture
def start_nginx(app, tmp_path):
    """Start nginx-rtmp in front of an app URL; stopped after the test."""
    require_streaming_tools()
    processes = []

    def start(app_url: str, name: str = "streaming") -> NginxRtmp:
        folder = tmp_path / name
        http_port, rtmp_port = free_port(), free_port()
        config = tmp_path / f"{name}.conf"
        config.write_text(
            render_nginx_config(
                app_url=app_url,
                http_listen=f"127.0.0.1:{http_port}",
                rtmp_listen=f"127.0.0.1:{rtmp_port}",
                folder=folder,
                user=getpass.getuser() if os.geteuid() == 0 else None,
            )
        )
        process = subprocess.Popen(
            [NGINX, "-c", str(config), "-e", str(folder / "nginx-error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(process)
        wait_for_port(http_port)
        wait_for_port(rtmp_port)
        return NginxRtmp(
            http=f"http://127.0.0.1:{http_port}",
            rtmp=f"rtmp://127.0.0.1:{rtmp_port}/live",
            folder=folder,
            process=process,
        )

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def nginx_rtmp(app, live_server, start_nginx):
    """nginx-rtmp in front of the test app (its STREAMING_FOLDER is nginx's folder); nginx
    calls on_update every 2 s instead of 30."""
    app.config["STREAM_UPDATE_SECONDS"] = 2
    server = start_nginx(live_server)
    app.config["STREAMING_FOLDER"] = str(server.folder)
    app.config["RECORDINGS_ACCEL_PREFIX"] = "/_recordings"
    return server
