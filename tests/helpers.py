"""Small helpers shared by tests."""

import os
import re
from datetime import UTC, datetime

import pytest

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # a Tuesday; 10:00 in Shanghai
PASSWORD = "correct horse battery"
IN_CI = os.environ.get("CI") == "true"
CSRF_PATTERN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def require(condition: bool, reason: str) -> None:
    """Skip when a component is missing by hand; fail under CI, where it must be there."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: every component must be installed)")
    pytest.skip(reason)


def csrf_token_from(html: str) -> str:
    match = CSRF_PATTERN.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


def post_form(client, page_url: str, action_url: str, data: dict, **kwargs):
    """GET a page for its CSRF token, then POST data to action_url as the browser would."""
    token = csrf_token_from(client.get(page_url).get_data(as_text=True))
    return client.post(action_url, data={"csrf_token": token, **data}, **kwargs)


def log_in(client, identifier: str, password: str = PASSWORD, *, expect_success=True, **extra):
    """Log in through the real form; return the POST response. Unless told a failure is
    expected, assert that it worked (a redirect away from the login page, and a session)."""
    response = post_form(
        client, "/login", "/login", {"identifier": identifier, "password": password, **extra}
    )
    if expect_success:
        assert response.status_code == 302, f"log in as {identifier} failed"
        assert not response.headers["Location"].startswith("/login"), response.headers
        assert client.get("/account/notifications").status_code == 200
    return response


class QueryCounter:
    """Counts the SQL statements the app's engine runs inside a `with` block."""

    def __init__(self, engine):
        self.engine = engine
        self.statements: list[str] = []

    def _record(self, _conn, _cursor, statement, *_args):
        self.statements.append(statement)

    def __enter__(self):
        from sqlalchemy import event

        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc_info):
        from sqlalchemy import event

        event.remove(self.engine, "before_cursor_execute", self._record)

    @property
    def count(self) -> int:
        return len(self.statements)


def count_queries(client, url: str) -> int:
    """How many SQL statements one GET of the page runs (after a first, warming GET)."""
    from webapp.db import db

    assert client.get(url).status_code == 200, url
    with QueryCounter(db.engine) as counter:
        response = client.get(url)
    assert response.status_code == 200, url
    return counter.count


def xlsx_bytes(rows) -> bytes:
    """An Excel workbook of these rows, as an upload would carry it."""
    import io

    import openpyxl

    workbook = openpyxl.Workbook()
    for row in rows:
        workbook.active.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
