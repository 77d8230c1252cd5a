"""Backups and restores of the app's database, with the tools each database is meant to be
copied with: PostgreSQL's pg_dump (custom format, a consistent snapshot while the app runs)
and pg_restore; SQLite's online backup API (a consistent copy while the app writes).

    flask backup create [--folder DIR] [--keep N]   # a timestamped file, the oldest pruned
    flask backup restore FILE [--yes]               # into the configured database

deploy/systemd/yunketang-backup.timer runs `create` daily. A restore replaces what the
database holds; run it with the web app and workers stopped, then `flask db upgrade`."""

import os
import shutil
import sqlite3
import subprocess
from contextlib import closing
from datetime import datetime
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import make_url

from webapp.db import utcnow

backup_cli = AppGroup("backup", help="Back up and restore the database.")

SUFFIX = {"postgresql": ".dump", "sqlite": ".sqlite3"}


class BackupError(Exception):
    pass


def _url():
    return make_url(current_app.config["SQLALCHEMY_DATABASE_URI"])


def _libpq_url() -> str:
    return _url().set(drivername="postgresql").render_as_string(hide_password=False)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed (Debian: apt-get install postgresql-client)")
    return found


def create_backup(folder: Path, *, now: datetime) -> Path:
    """A consistent copy of the database, written to a new file in `folder`."""
    url = _url()
    backend = url.get_backend_name()
    if backend not in SUFFIX:
        raise BackupError(f"cannot back up a {backend} database")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"yunketang-{now:%Y%m%dT%H%M%S}.{now.microsecond:06d}Z{SUFFIX[backend]}"
    partial = target.with_name(target.name + ".partial")
    if backend == "postgresql":
        done = subprocess.run(
            [_tool("pg_dump"), "--format=custom", "--no-owner", f"--file={partial}",
             f"--dbname={_libpq_url()}"],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            partial.unlink(missing_ok=True)
            raise BackupError(done.stderr.strip() or "pg_dump failed")
    else:
        with (
            closing(sqlite3.connect(url.database)) as source,
            closing(sqlite3.connect(partial)) as copy,
        ):
            source.backup(copy)
    os.chmod(partial, 0o600)  # it holds everyone's contact details
    partial.rename(target)  # a file with the final name is always complete
    return target


def prune(folder: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` backups in the folder; the deleted ones."""
    backups = sorted(
        path for suffix in SUFFIX.values() for path in folder.glob(f"yunketang-*{suffix}")
    )
    old = backups[: max(len(backups) - keep, 0)]
    for path in old:
        path.unlink()
    return old


def restore_backup(source: Path) -> None:
    """Replace the database's content with the backup's."""
    url = _url()
    if not source.is_file():
        raise BackupError(f"no such backup: {source}")
    if url.get_backend_name() == "postgresql":
        done = subprocess.run(
            [_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--single-transaction",
             f"--dbname={_libpq_url()}", str(source)],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            raise BackupError(done.stderr.strip() or "pg_restore failed")
        return
    with (
        closing(sqlite3.connect(source)) as backup,
        closing(sqlite3.connect(url.database)) as database,
    ):
        backup.backup(database)


@backup_cli.command("create")
@click.option("--folder", type=click.Path(path_type=Path), default=None,
              help="Where to write (default: instance/backups).")  # fmt: skip
@click.option("--keep", type=click.IntRange(min=1), default=14, help="Backups to keep.")
def create_command(folder: Path | None, keep: int):
    """Write a consistent backup of the database and prune the oldest."""
    folder = folder or Path(current_app.instance_path) / "backups"
    try:
        path = create_backup(folder, now=utcnow())
    except BackupError as error:
        raise click.ClickException(str(error)) from error
    removed = prune(folder, keep)
    click.echo(f"backup written: {path} ({path.stat().st_size} bytes)")
    if removed:
        click.echo(f"older backups removed: {len(removed)}")


@backup_cli.command("restore")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask first.")
def restore_command(source: Path, yes: bool):
    """Replace the database's content with a backup (stop the web app and workers first)."""
    if not yes:
        click.confirm(
            f"Replace everything in the database with {source}? Stop the web app and the "
            "workers first.",
            abort=True,
        )
    try:
        restore_backup(source)
    except BackupError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"restored from {source}; now run: flask db upgrade")
