"""What the benchmarks share: a throwaway PostgreSQL database and a free local port."""

import socket
import uuid

from sqlalchemy import create_engine, make_url, text

from webapp.config import normalise_database_url


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
