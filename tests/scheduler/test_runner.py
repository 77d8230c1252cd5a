import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from scheduler.jobs import JOBS, Job
from scheduler.runner import build_scheduler

ROOT = Path(__file__).resolve().parents[2]


def test_jobs_have_unique_fixed_ids():
    ids = [job.id for job in JOBS]
    assert len(ids) == len(set(ids))


def test_jobs_coalesce_run_one_at_a_time_and_tolerate_a_late_start(app):
    calls = []
    scheduler = build_scheduler(app, jobs=(Job("probe", lambda worker: calls.append(1), 5),))
    job = scheduler.get_job("probe")
    assert job.coalesce is True
    assert job.max_instances == 1
    assert job.misfire_grace_time == 5
    assert str(scheduler.timezone) == "UTC"
    job.func()  # runs inside an app context of its own
    assert calls == [1]


def test_worker_starts_logs_and_stops_cleanly_on_sigterm(tmp_path, migrated_database):
    env = {
        **os.environ,
        "YUNKETANG_DATABASE_URL": migrated_database,
        "YUNKETANG_INSTANCE_PATH": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "scheduler"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = ""
        deadline = time.monotonic() + 30
        while "scheduler started" not in output and time.monotonic() < deadline:
            line = worker.stdout.readline()
            if not line:
                break
            output += line
        assert "scheduler started" in output, output
        worker.send_signal(signal.SIGTERM)
        returncode = worker.wait(timeout=15)
        output += worker.stdout.read()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        worker.stdout.close()
    assert returncode == 0, output
    assert "received SIGTERM" in output and "scheduler stopped" in output
