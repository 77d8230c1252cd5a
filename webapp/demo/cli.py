"""`flask demo load`: the Lugouqiao cloud classroom as demo data."""

import os
import shutil
import subprocess

import click
from flask import current_app
from flask.cli import AppGroup

from webapp.db import db, utcnow
from webapp.demo.services import ensure_live_session, load_demo
from webapp.streaming.broadcasts import stream_of
from webapp.streaming.keys import publish_key
from webapp.work import command_unit_of_work

demo_cli = AppGroup("demo", help="Demo data.")


@demo_cli.command("load")
def load_command():
    """Load the Lugouqiao cloud classroom demo (idempotent) and print the demo accounts."""
    with command_unit_of_work():
        accounts = load_demo(now=utcnow())
    click.echo("Demo data ready: 卢沟桥乡基层党员干部能力提升研修班")
    click.echo("Demo accounts (log in with the email or mobile number):")
    for account in accounts:
        click.echo(f"  {account.role.value:<12} {account.login:<26} password: {account.password}")


@demo_cli.command("broadcast")
@click.option("--seconds", type=int, default=0, help="Stop after this long (0: until Ctrl-C).")
def broadcast_command(seconds):
    """Put a test pattern with a clock on the air as the demo's live class (needs ffmpeg
    and nginx with the RTMP module; `make demo` starts both when they are installed)."""
    ingest = current_app.config["RTMP_INGEST_URL"].rstrip("/")
    ffmpeg = shutil.which(current_app.config["FFMPEG"])
    if not ingest or ffmpeg is None:
        raise click.ClickException(
            "Streaming is off: set YUNKETANG_RTMP_INGEST_URL and install ffmpeg and nginx "
            "with the RTMP module (Debian: apt-get install nginx libnginx-mod-rtmp ffmpeg)."
        )
    with command_unit_of_work():
        session = ensure_live_session(now=utcnow())
        stream = stream_of(session)
        target = f"{ingest}/{stream.name}?key={publish_key(stream)}"
        session_id, timezone = session.id, session.series.timezone
    db.session.remove()
    click.echo(
        f"On the air as session {session_id}: {current_app.config['BASE_URL']}"
        f"/sessions/{session_id}/watch (Ctrl-C stops)"
    )
    clock = r"%{localtime\:%H\\\:%M\\\:%S}"
    video = (
        "testsrc2=size=640x360:rate=25,"
        "drawtext=font=Sans:fontsize=48:fontcolor=white:box=1:boxcolor=black@0.6:"
        f"x=(w-tw)/2:y=h-th-20:text='{clock}'"
    )
    command = [ffmpeg, "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi", "-i", video]
    command += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]
    command += ["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency"]
    command += ["-pix_fmt", "yuv420p", "-g", "50", "-c:a", "aac", "-b:a", "64k"]
    command += ["-t", str(seconds)] if seconds else []
    command += ["-f", "flv", target]
    try:
        done = subprocess.run(command, env={**os.environ, "TZ": timezone}, check=False)  # noqa: S603
    except KeyboardInterrupt:
        return
    if done.returncode not in (0, 255):  # 255: stopped by Ctrl-C
        raise click.ClickException(
            "ffmpeg stopped: is nginx with the RTMP module running (see the README)?"
        )
