"""Test fixtures. One suite, two databases: SQLite by default, PostgreSQL when
TEST_DATABASE_URL names a server (a fresh database is created on it and dropped after)."""

import os
import tempfile
import uuid
from contextlib import contextmanager

import flask_migrate
import pytest
from flask.testing import FlaskClient
from sqlalchemy import create_engine, delete, make_url, text
from sqlalchemy.exc import OperationalError

# Settings from the developer's shell must not leak into tests.
for _name in [name for name in os.environ if name.startswith("YUNKETANG_")]:
    del os.environ[_name]
os.environ["YUNKETANG_INSTANCE_PATH"] = tempfile.mkdtemp(prefix="ykt-test-instance-")

from tests.factories import Factories  # noqa: E402
from tests.helpers import NOW, require  # noqa: E402
from webapp import create_app  # noqa: E402
from webapp.config import normalise_database_url  # noqa: E402
from webapp.db import db  # noqa: E402
from webapp.feeds.fetches import fetch_counter  # noqa: E402
from webapp.feeds.memory import lookup_cache  # noqa: E402

pytest_plugins = ["tests.browser_fixtures"]


def backend_name() -> str:
    url = os.environ.get("TEST_DATABASE_URL", "")
    return "postgresql" if url.startswith("postgres") else "sqlite"


def pytest_report_header(config):
    return f"database backend: {backend_name()}"


def pytest_collection_modifyitems(config, items):
    if backend_name() == "postgresql":
        return
    skip = pytest.mark.skip(reason="PostgreSQL-only behaviour; run with TEST_DATABASE_URL")
    for item in items:
        if "postgresql_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    """An empty database for this test run."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
        return
    with postgresql_database(url, f"ykt_test_{os.getpid()}_{uuid.uuid4().hex[:8]}") as created:
        yield created


@contextmanager
def postgresql_database(server_url: str, name: str):
    """A new, empty database on the server of `server_url`, dropped afterwards."""
    url = make_url(normalise_database_url(server_url))
    server = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        connection = server.connect()
    except OperationalError as error:
        require(False, f"PostgreSQL is not reachable at {url.host}:{url.port}: {error}")
    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.close()
        server.dispose()


def test_config(database_url: str, **overrides) -> dict:
    config = {
        "TESTING": True,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret-key-not-for-production",
        "PASSWORD_HASH_PROFILE": "CHEAPEST",
        "BASE_URL": "http://localhost",
        # The tests' own robot receivers listen on loopback over http: allowed by name.
        "OUTGOING_ALLOWED_HOSTS": "127.0.0.1",
    }
    config.update(overrides)
    return config


test_config.__test__ = False  # a helper, not a test


@pytest.fixture(scope="session")
def migrated_database(database_url):
    """The test database upgraded from empty by the real migrations."""
    app = create_app(test_config(database_url))
    with app.app_context():
        flask_migrate.upgrade()
        db.engine.dispose()
    return database_url


class FreshContextClient(FlaskClient):
    """Run every request in its own app context, as a server does.

    The app fixture keeps a context open for the test's own queries; without this, requests
    would share its `g` (cached user, CSRF token) and its database session."""

    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)


@pytest.fixture
def app(migrated_database):
    app = create_app(test_config(migrated_database))
    app.test_client_class = FreshContextClient
    with app.app_context():
        yield app
        fetch_counter.pending.clear()  # counts of this test's feeds are not the next one's
        lookup_cache.clear()
        db.session.remove()
        empty_all_tables()
        db.engine.dispose()


def empty_all_tables() -> None:
    """Leave the migrated schema with no rows for the next test."""
    tables = db.metadata.sorted_tables
    with db.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            names = ", ".join(f'"{table.name}"' for table in tables)
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            # Self-referencing rows (unit.parent_id) cannot be deleted in one pass with
            # foreign keys on; the pragma only takes effect outside a transaction.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            for table in reversed(tables):
                connection.execute(delete(table))
            connection.commit()
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def factories(app) -> Factories:
    return Factories(now=NOW)


@pytest.fixture
def make_user(factories):
    return factories.user


@pytest.fixture
def make_series(factories):
    return factories.series


@pytest.fixture
def scratch_database_url(tmp_path):
    """A second, empty database on the same backend as the suite."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        yield f"sqlite:///{tmp_path / 'scratch.sqlite3'}"
        return
    with postgresql_database(url, f"ykt_scratch_{os.getpid()}") as created:
        yield created
