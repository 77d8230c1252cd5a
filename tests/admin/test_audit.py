"""The audit log: every kind of change an admin may have to account for is recorded, with
who made it and how, in the change's own transaction; the page filters by person, object
and time; the export is a safe CSV or XLSX."""

import csv
import io
from datetime import UTC, datetime, timedelta

import openpyxl
import pytest
from sqlalchemy import select

from tests.helpers import log_in, post_form
from webapp import audit
from webapp.attendance.reports import override_status
from webapp.attendance.rules import Status
from webapp.audit import AuditEntry, Via, acting_as
from webapp.db import db, utcnow
from webapp.errors import Conflict
from webapp.feeds.links import rotate_token, token_for
from webapp.feeds.models import FeedKind
from webapp.people.models import Role, UnitKind
from webapp.people.units import create_unit
from webapp.sessions.services import cancel_session
from webapp.streaming.broadcasts import rotate_key, stream_of
from webapp.work import unit_of_work


def _entries(**where) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id)
    for name, value in where.items():
        query = query.where(getattr(AuditEntry, name) == value)
    return list(db.session.scalars(query))


@pytest.fixture
def organizer_world(client, make_user, make_series):
    organizer = make_user(Role.ORGANIZER, email="org@example.org", name="组织者老李")
    cadre = make_user(name="王建国", phone="13910000001")
    series = make_series(
        title="卢沟桥乡研修班",
        organizers=[organizer],
        participants=[cadre],
        sessions=2,
        first_start=utcnow().replace(microsecond=0) + timedelta(days=10),
    )
    log_in(client, "org@example.org")
    return organizer, cadre, series


def test_changes_made_on_the_pages_are_logged_with_who_and_what(client, organizer_world):
    organizer, cadre, series = organizer_world
    session = series.sessions[0]
    day = (session.starts_at + timedelta(days=1)).astimezone().date().isoformat()
    url = f"/sessions/{session.id}/reschedule"
    response = post_form(
        client, url, url, {"day": day, "start": "09:00", "end": "11:00", "reason": "专家行程调整"}
    )
    assert response.status_code == 302
    url = f"/sessions/{series.sessions[1].id}/cancel"
    assert post_form(client, url, url, {"reason": "防汛"}).status_code == 302
    url = f"/series/{series.id}/participants"
    post_form(client, url, f"/series/{series.id}/participants/add", {"identifier": "13910000002"})

    db.session.expire_all()
    moved, cancelled = _entries(action="session.rescheduled"), _entries(action="session.cancelled")
    assert len(moved) == 1 and len(cancelled) == 1
    assert moved[0].actor_id == organizer.id and moved[0].actor_name == "组织者老李"
    assert moved[0].via == Via.WEB and moved[0].series_id == series.id
    assert moved[0].object_label.startswith("卢沟桥乡研修班 · ")
    old, new = moved[0].details["starts_at"]
    assert new == session.starts_at.isoformat() and old != new
    assert moved[0].details["reason"] == "专家行程调整"
    assert cancelled[0].details == {"reason": "防汛"}


def test_a_change_that_fails_leaves_no_audit_row(app, make_series):
    series = make_series(sessions=1)
    session = series.sessions[0]
    cancel_session(session, reason="第一次", by=None, now=utcnow())
    db.session.commit()
    before = len(_entries())
    with app.test_request_context(), unit_of_work() as work:
        cancel_session(session, reason="第二次", by=None, now=utcnow())  # already cancelled
    assert not work.done and isinstance(work.error, Conflict)
    assert len(_entries()) == before


def test_imports_overrides_links_keys_roles_and_liaisons_are_logged(client, make_user, make_series):
    admin = make_user(Role.ADMIN, email="admin@example.org", name="管理员")
    organizer = make_user(Role.ORGANIZER, name="组织者")
    cadre = make_user(name="王建国", email="wang@example.org")
    series = make_series(organizers=[organizer], participants=[cadre])
    session = series.sessions[0]
    with acting_as(organizer.id, organizer.display_name, Via.API):
        override_status(session, cadre, Status.EXCUSED, "防汛值班", by=organizer, now=utcnow())
        rotate_key(stream_of(session), by_id=organizer.id, now=utcnow())
        rotate_token(token_for(cadre, FeedKind.PERSONAL, now=utcnow()), now=utcnow())
    db.session.commit()
    decided = _entries(action="attendance.decided")[0]
    assert (decided.object_type, decided.object_id) == ("user", cadre.id)
    assert decided.details["status"] == "excused" and decided.details["reason"] == "防汛值班"
    assert decided.via == Via.API and decided.actor_name == "组织者"
    assert _entries(action="stream_key.rotated")[0].series_id == series.id
    assert _entries(action="feed_token.rotated")[0].object_label.startswith("王建国")

    log_in(client, "admin@example.org")
    page = f"/admin/users/{cadre.id}"
    post_form(
        client, page, page,
        {"display_name": "王建国", "email": "wang@example.org", "phone": "", "unit_id": "0",
         "job_title": "", "organizer": "y"},
    )  # fmt: skip
    changed = _entries(action="user.changed")[-1]
    assert changed.actor_id == admin.id and changed.details["changes"]["roles"]
    village = create_unit("大瓦窑村", UnitKind.VILLAGE)
    db.session.commit()
    post_form(
        client, "/admin/units", "/admin/units",
        {"unit_id": str(village.id), "identifier": "wang@example.org"},
    )  # fmt: skip
    assert _entries(action="liaison.added")[0].details["name"] == "王建国"


def test_the_participant_import_is_logged_once_with_its_counts(client, make_user, make_series):
    from tests.series.test_views import sheet, upload

    organizer = make_user(Role.ORGANIZER, email="org@example.org")
    series = make_series(organizers=[organizer])
    log_in(client, "org@example.org")
    response = upload(
        client,
        series,
        sheet([["王建国", "13910000001", "", "", ""], ["李春梅", "13910000002", "", "", ""]]),
    )
    preview = response.headers["Location"]
    post_form(client, preview, preview, {})
    imported = _entries(action="import.participants")
    assert len(imported) == 1
    assert imported[0].details["enrolled"] == 2 and imported[0].details["file"] == "名单.xlsx"
    assert len(_entries(action="enrollment.started")) == 2  # and each enrollment


def test_the_page_filters_by_person_object_and_time_and_pages_back(client, make_user):
    admin = make_user(Role.ADMIN, email="admin@example.org", name="管理员")
    other = make_user(Role.ADMIN, name="另一位管理员")
    long_ago = datetime(2026, 1, 5, 4, 0, tzinfo=UTC)
    for n in range(130):
        db.session.add(
            AuditEntry(
                at=long_ago + timedelta(hours=n),
                actor_id=admin.id if n % 2 else other.id,
                actor_name="管理员" if n % 2 else "另一位管理员",
                via=Via.WEB,
                action="unit.renamed",
                object_type="unit",
                object_id=n % 3 + 1,
                object_label=f"单位{n % 3 + 1}",
            )
        )
    db.session.commit()
    log_in(client, "admin@example.org")
    first = client.get("/admin/audit").text
    assert first.count("<tr>") == 101  # a hundred entries and the header
    assert "更早" in first
    older_link = [part for part in first.split('"') if "before=" in part][0].replace("&amp;", "&")
    second = client.get(older_link).text
    assert second.count("<tr>") == 31  # the remaining thirty
    by_person = client.get(f"/admin/audit?actor={other.id}").text
    assert "另一位管理员" in by_person and by_person.count("<tr>") == 66
    by_object = client.get("/admin/audit?object_type=unit&object_id=2").text
    assert by_object.count("<tr>") == 44
    # 2026-01-05 in Beijing: the entries from 04:00 UTC up to 16:00 UTC that day (12 of them).
    one_day = client.get("/admin/audit?since=2026-01-05&until=2026-01-05").text
    assert one_day.count("<tr>") == 13
    assert client.get("/admin/audit?since=not-a-day").status_code == 400
    assert client.get("/admin/audit?object_id=99999999999").status_code == 400


def test_the_export_is_filtered_and_never_a_formula(client, make_user):
    make_user(Role.ADMIN, email="admin@example.org")
    audit.record(
        "unit.renamed",
        object_type="unit",
        object_id=1,
        label='=HYPERLINK("http://evil.example","点我")',
        details={"name": ["旧", "@SUM(1)"]},
    )
    audit.record("unit.created", object_type="unit", object_id=2, label="大瓦窑村")
    db.session.commit()
    log_in(client, "admin@example.org")
    response = client.get("/admin/audit.csv?action=unit.renamed")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment; filename*=UTF-8''")
    rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    assert rows[0][0] == "时间" and len(rows) == 2  # the filter applies
    assert rows[1][6].startswith("'=HYPERLINK") and "name: 旧 → @SUM(1)" in rows[1][8]
    workbook = openpyxl.load_workbook(io.BytesIO(client.get("/admin/audit.xlsx").get_data()))
    sheet = workbook.active
    labels = [sheet.cell(row, 7).value for row in range(2, sheet.max_row + 1)]
    assert sorted(labels) == sorted(['=HYPERLINK("http://evil.example","点我")', "大瓦窑村"])
    assert all(sheet.cell(row, 7).data_type == "s" for row in range(2, sheet.max_row + 1))


def test_who_acted_is_the_command_line_or_the_system_outside_a_request(app, make_user):
    make_user(email="cadre@example.org")
    result = app.test_cli_runner().invoke(
        args=["users", "set-role", "cadre@example.org", "organizer"]
    )
    assert result.exit_code == 0, result.output
    entry = _entries(action="user.changed")[-1]
    assert entry.via == Via.CLI and entry.actor_id is None
    assert entry.details["changes"]["roles"] == [["participant"], ["organizer", "participant"]]
    assert audit.current_actor().via == Via.SYSTEM  # the worker: no request, no command


def test_publishing_and_archiving_a_series_are_logged(app, make_user, make_series):
    from webapp.series.models import SeriesStatus
    from webapp.series.services import archive_series
    from webapp.sessions.services import publish_series

    series = make_series(status=SeriesStatus.DRAFT, title="冬训班")
    publish_series(series, now=utcnow())
    archive_series(series)
    db.session.commit()
    entries = _entries(object_type="series")
    assert [entry.action for entry in entries] == ["series.published", "series.archived"]
    assert {entry.object_label for entry in entries} == {"冬训班"}


def test_edits_of_a_session_its_agenda_and_its_series_are_logged(app, make_series):
    from webapp.sessions.lectures import add_lecture
    from webapp.sessions.services import update_session

    series = make_series(title="冬训班", sessions=1)
    session = series.sessions[0]
    update_session(session, title="开班式", location="乡政府三楼", starts_at=session.starts_at,
                   ends_at=session.ends_at, accept_warnings=False)  # fmt: skip
    add_lecture(session, title="基层治理")
    db.session.commit()
    changed = _entries(action="session.changed")[0]
    assert changed.details == {"title": "开班式", "location": "乡政府三楼"}
    assert _entries(action="lecture.changed")[-1].details["lecture"] == "基层治理"


def test_attendance_recomputed_by_hand_is_logged_the_worker_s_round_is_not(
    app, make_user, make_series
):
    from webapp.attendance.finalise import finalise

    organizer = make_user(Role.ORGANIZER)
    series = make_series(participants=[make_user()], sessions=1,
                         first_start=utcnow() - timedelta(days=1))  # fmt: skip
    session = series.sessions[0]
    finalise(session, now=utcnow())  # the worker
    finalise(session, now=utcnow(), by_id=organizer.id)  # an organizer's recomputation
    db.session.commit()
    recomputed = _entries(action="attendance.recomputed")
    assert len(recomputed) == 1 and recomputed[0].details["counts"]["absent"] == 1
