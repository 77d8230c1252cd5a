"""Database base class, the shared `db` object and the UTC datetime column type."""

import json
from datetime import UTC, datetime
from enum import Enum

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import JSON, DateTime, MetaData, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, registry
from sqlalchemy.types import TypeDecorator

# Named constraints, so migrations can drop and alter them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend.

    PostgreSQL stores `timestamptz`; SQLite has no time zones, so the value is stored as
    naive UTC text (which still sorts and compares correctly) and made aware on the way out.
    Naive datetimes are refused: they are always a bug somewhere upstream.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}; use aware UTC datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    # One registry carrying both settings: Flask-SQLAlchemy subclasses this base, and
    # SQLAlchemy 2.1 refuses a subclass that sets metadata or the type map on its own.
    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={datetime: UTCDateTime},
    )


db = SQLAlchemy(model_class=Base)


@event.listens_for(Base, "mapper_configured", propagate=True)
def _clean_text_on_assignment(mapper, class_) -> None:
    """Columns of the cleaned text types (webapp.text) clean a value as it is assigned, so
    the object in memory (rendered later in the same request) holds what will be stored."""
    for prop in mapper.column_attrs:
        cleaner = getattr(prop.columns[0].type, "cleaner", None)
        if cleaner is not None:
            event.listen(
                getattr(class_, prop.key),
                "set",
                lambda target, value, old, initiator, clean=cleaner: clean(value),
                retval=True,
            )


@event.listens_for(Engine, "connect")
def _configure_sqlite(dbapi_connection, connection_record):
    """Turn on what SQLite leaves off by default: foreign keys, WAL and a lock timeout. The
    worker holds the write lock while it sends one message (reminders/dispatch.py), so the
    timeout outlasts the longest send (MAIL_TIMEOUT); in WAL mode synchronous=NORMAL keeps
    the database consistent and makes each small commit cheap."""
    module = type(dbapi_connection).__module__
    if not module.startswith("sqlite3"):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=20000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def insert_new(model, rows: list[dict], keys: list[str]) -> None:
    """Insert rows; one whose key exists already (perhaps written a moment ago by another
    worker) is left alone, without an error."""
    if not rows:
        return
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for start in range(0, len(rows), 1000):
        statement = insert(model).values(rows[start : start + 1000])
        db.session.execute(statement.on_conflict_do_nothing(index_elements=keys))


def upsert(model, rows: list[dict], keys: list[str]) -> None:
    """Insert rows or, where the key exists, overwrite its other columns: sent as
    multi-row statements of up to 1,000 rows, compiled once (SQLAlchemy's "insertmanyvalues"),
    not a SELECT and a write per row as `session.merge` would."""
    if not rows:
        return
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(model)
    others = {name: statement.excluded[name] for name in rows[0] if name not in keys}
    db.session.execute(statement.on_conflict_do_update(index_elements=keys, set_=others), rows)


def copy_rows(model, columns: list[str], rows: list[tuple]) -> None:
    """Append many rows to one table in the current transaction: PostgreSQL's COPY (the
    fastest way in: no statement per row), a plain executemany elsewhere. Values as the
    model takes them (enums, JSON as Python values, aware datetimes)."""
    if not rows:
        return
    table = model.__table__
    connection = db.session.connection()
    if connection.dialect.name != "postgresql":
        db.session.execute(table.insert(), [dict(zip(columns, row, strict=True)) for row in rows])
        return
    as_json = [table.c[name].type._type_affinity is JSON for name in columns]
    names = ", ".join(f'"{name}"' for name in columns)
    driver = connection.connection.driver_connection
    with (
        driver.cursor() as cursor,
        cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy,
    ):
        for row in rows:
            copy.write_row(
                [
                    json.dumps(value) if is_json else _plain(value)
                    for value, is_json in zip(row, as_json, strict=True)
                ]
            )


def _plain(value):
    return value.value if isinstance(value, Enum) else value


def database_size() -> int | None:
    """The database's size on disk in bytes (None where it cannot be told)."""
    dialect = db.engine.dialect.name
    if dialect == "postgresql":
        return int(db.session.scalar(text("SELECT pg_database_size(current_database())")))
    if dialect == "sqlite":
        pages = db.session.scalar(text("PRAGMA page_count"))
        size = db.session.scalar(text("PRAGMA page_size"))
        return int(pages) * int(size)
    return None
