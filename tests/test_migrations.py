import os

import flask_migrate
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, make_url, text

from tests.conftest import test_config
from webapp import create_app
from webapp.config import normalise_database_url
from webapp.db import db


def test_models_and_migrations_agree(app):
    """The database the migrations built has exactly the models' schema (`flask db check`)."""
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, db.metadata)
    assert differences == []


def test_migrations_are_at_head(app):
    migrate = app.extensions["migrate"]
    script = ScriptDirectory.from_config(migrate.migrate.get_config())
    with db.engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
    assert set(current) == set(script.get_heads())
    assert len(script.get_heads()) == 1, "migrations have more than one head"


@pytest.fixture
def scratch_database_url(tmp_path):
    """A second, empty database on the same backend as the suite."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        yield f"sqlite:///{tmp_path / 'scratch.sqlite3'}"
        return
    url = make_url(normalise_database_url(url))
    server = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = f"ykt_scratch_{os.getpid()}"
    with server.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


def test_migrations_go_down_to_empty_and_up_again(scratch_database_url):
    app = create_app(test_config(scratch_database_url))
    with app.app_context():
        flask_migrate.upgrade()
        flask_migrate.downgrade(revision="base")
        with db.engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) <= {"alembic_version"}
        flask_migrate.upgrade()
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, db.metadata) == []
        db.engine.dispose()
