"""Recordings: nginx-rtmp writes FLV files; the worker remuxes each into an MP4 with its
index in front (no re-encoding), so a phone can seek in the replay at once. One bad file
fails alone: it is marked failed with ffmpeg's last words, and the others go on."""

import json
import subprocess
from datetime import datetime

from flask import current_app
from sqlalchemy import select

from webapp.db import db
from webapp.streaming.broadcasts import recordings_folder
from webapp.streaming.models import Recording, RecordingState

REMUX_TIMEOUT = 600  # seconds for one file


def make_playable(*, now: datetime, limit: int = 5) -> int:
    """Remux up to `limit` recorded files; returns how many were tried."""
    waiting = db.session.scalars(
        select(Recording)
        .where(Recording.state == RecordingState.RECORDED)
        .order_by(Recording.id)
        .limit(limit)
    ).all()
    for recording in waiting:
        _remux(recording)
        db.session.commit()
    return len(waiting)


def _remux(recording: Recording) -> None:
    folder = recordings_folder().resolve()
    source = (folder / recording.source_path).resolve()
    if not source.is_relative_to(folder) or not source.is_file():
        recording.state, recording.error = RecordingState.FAILED, "file not found"
        return
    target = source.with_suffix(".mp4")
    ffmpeg = current_app.config["FFMPEG"]
    command = [ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-i", str(source)]
    command += ["-c", "copy", "-movflags", "+faststart", str(target)]
    try:
        done = subprocess.run(  # noqa: S603 (a fixed program and our own paths)
            command, capture_output=True, text=True, timeout=REMUX_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        recording.state, recording.error = RecordingState.FAILED, str(error)[:500]
        return
    if done.returncode != 0 or not target.is_file():
        recording.state = RecordingState.FAILED
        recording.error = (done.stderr.strip().splitlines() or ["ffmpeg failed"])[-1][:500]
        return
    recording.path = str(target.relative_to(folder))
    recording.size = target.stat().st_size
    recording.seconds = _duration(target)
    recording.state, recording.error = RecordingState.READY, None


def _duration(file) -> float | None:
    probe = current_app.config["FFMPEG"].replace("ffmpeg", "ffprobe")
    try:
        done = subprocess.run(  # noqa: S603
            [probe, "-v", "error", "-show_entries", "format=duration", "-of", "json", str(file)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return float(json.loads(done.stdout)["format"]["duration"])
    except (OSError, subprocess.TimeoutExpired, ValueError, KeyError, TypeError):
        return None
