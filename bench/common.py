"""What the benchmarks share: a throwaway PostgreSQL database, a free local port, worker
processes started and settled."""

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, func, make_url, select, text

from webapp.config import normalise_database_url
from webapp.db import db
from webapp.reminders.models import WorkerHeartbeat

ROOT = Path(__file__).resolve().parents[1]


def fresh_database(server_url: str) -> str:
    """Create an empty database on the server; return its URL."""
    url = make_url(normalise_database_url(server_url))
    name = f"ykt_bench_{uuid.uuid4().hex[:8]}"
    engine = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def drop_database(database_url: str) -> None:
    url = make_url(database_url)
    engine = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
    engine.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_workers(app, count: int, settings: dict) -> list:
    """Start `count` worker processes (python -m scheduler) with these YUNKETANG_ settings
    and wait until each has beaten once, and a second more to settle."""
    env = {
        **os.environ,
        "YUNKETANG_SECRET_KEY": "benchmark-secret-key-0123456789abcdef",
        "YUNKETANG_LOG_LEVEL": "WARNING",
        **{f"YUNKETANG_{name}": str(value) for name, value in settings.items()},
    }
    processes = [
        subprocess.Popen([sys.executable, "-m", "scheduler"], cwd=ROOT, env=env)
        for _ in range(count)
    ]
    with app.app_context():
        while db.session.scalar(select(func.count()).select_from(WorkerHeartbeat)) < count:
            db.session.rollback()
            time.sleep(0.1)
    time.sleep(1)
    return processes
