"""Every parser of user input, fed whatever hypothesis makes: times and dates, time zones,
mobile numbers and email addresses, imported sheets (participant lists, meeting exports),
API bodies and query strings. Each either gives a value that keeps its promises or refuses
with a DomainError (a message for the user); nothing else escapes."""

import json
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import available_timezones

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError
from openpyxl.utils.exceptions import IllegalCharacterError

from tests.helpers import xlsx_bytes
from webapp.api import schemas
from webapp.attendance.imports import parse_minutes, parse_time
from webapp.bounds import FIRST_YEAR, LAST_YEAR
from webapp.errors import DomainError, InvalidInput
from webapp.people.identifiers import normalise_email, normalise_phone
from webapp.series.sheets import read_sheet, read_table
from webapp.zones import is_valid_timezone, local_to_utc

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
ZONES = sorted(available_timezones())
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=12,
)


# --- times and time zones --------------------------------------------------------------------


@SETTINGS
@given(
    day=st.dates(min_value=date(FIRST_YEAR - 5, 1, 1), max_value=date(LAST_YEAR + 5, 12, 31)),
    clock=st.times(),
    zone=st.sampled_from(ZONES),
)
@example(day=date(2026, 3, 8), clock=time(2, 30), zone="America/New_York")  # a skipped hour
@example(day=date(2026, 11, 1), clock=time(1, 30), zone="America/New_York")  # a repeated hour
def test_a_local_time_is_a_utc_moment_that_shows_the_same_or_a_reason(day, clock, zone):
    try:
        moment = local_to_utc(day, clock, zone)
    except InvalidInput as error:
        assert error.message and error.field
        return
    assert moment.tzinfo is not None and moment.utcoffset() == timedelta(0)
    shown = moment.astimezone(__import__("zoneinfo").ZoneInfo(zone))
    assert (shown.date(), shown.time().replace(tzinfo=None)) == (day, clock.replace(tzinfo=None))


@SETTINGS
@given(st.text(max_size=80))
@example("../../etc/passwd")
@example("Asia/Shanghai\x00")
@example("posixrules")
def test_any_text_is_a_known_zone_or_not_and_never_an_error(name):
    assert is_valid_timezone(name) == (name in available_timezones())


@SETTINGS
@given(text=st.text(max_size=40), start=st.datetimes(min_value=datetime(2001, 1, 1),
                                                     max_value=datetime(2099, 1, 1)))  # fmt: skip
@example(text="2026-12-03 25:61", start=datetime(2026, 12, 3, 8))
@example(text="12/03/2026 4:00 PM", start=datetime(2026, 12, 3, 8))
def test_a_meeting_export_s_time_is_near_the_session_or_none(text, start):
    class Session:  # what parse_time reads of a session
        starts_at = start.replace(tzinfo=UTC)
        ends_at = starts_at + timedelta(hours=2)

        class series:  # noqa: N801
            timezone = "Asia/Shanghai"

    moment = parse_time(text, Session)
    if moment is not None:
        assert moment.tzinfo is not None
        assert abs(moment - Session.starts_at) < timedelta(days=2)


@SETTINGS
@given(st.text(max_size=40))
@example("1:02:03")
@example("99999999999分钟")
def test_a_duration_is_a_bounded_number_of_minutes_or_none(text):
    value = parse_minutes(text)
    assert value is None or 0 <= value <= 100000 + 1000 * 60


# --- mobile numbers and email addresses ------------------------------------------------------


@SETTINGS
@given(st.text(max_size=30) | st.from_regex(r"\+?86 ?1[3-9]\d( ?-?\d{4}){2}", fullmatch=True))
@example("139 1000 0001")
@example("+86 139-1000-0001")
@example("１３９１０００００１")  # full-width digits, as a phone keyboard may give
def test_a_mobile_number_is_e164_and_stays_so_or_is_refused(text):
    try:
        phone = normalise_phone(text)
    except InvalidInput as error:
        assert error.field == "phone"
        return
    assert phone.startswith("+") and phone[1:].isdigit() and 8 <= len(phone) <= 16
    assert normalise_phone(phone) == phone


@SETTINGS
@given(st.text(max_size=60) | st.emails())
def test_an_email_address_is_normalised_once_or_refused(text):
    try:
        email = normalise_email(text)
    except InvalidInput:
        return
    assert "@" in email and email == email.strip() and len(email) <= 254
    assert normalise_email(email) == email


# --- imported sheets -------------------------------------------------------------------------

CELL = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1)),
)


@SETTINGS
@given(
    rows=st.lists(st.lists(CELL, max_size=7), max_size=12),
    header=st.booleans(),
)
def test_any_workbook_reads_as_clean_rows_or_says_why(rows, header):
    if header:
        rows = [["姓名", "手机号", "邮箱", "单位", "角色"], *rows]
    try:
        data = xlsx_bytes(rows)
    except (ValueError, TypeError, IllegalCharacterError):
        assume(False)  # openpyxl itself refuses to write such a cell: no file to read
    try:
        read = read_sheet("名单.xlsx", data, max_rows=100)
    except DomainError as error:
        assert error.message
        return
    for row in read:
        for key, value in row.items():
            if isinstance(value, str):
                assert "\x00" not in value and len(value) <= 300, key


@SETTINGS
@given(data=st.binary(max_size=2000), name=st.sampled_from(["a.xlsx", "a.csv", "a.txt", "A.XLSX"]))
def test_any_bytes_uploaded_are_read_or_refused_with_a_reason(data, name):
    for reader in (read_sheet, read_table):
        try:
            reader(name, data, max_rows=50)
        except DomainError as error:
            assert error.message


@SETTINGS
@given(st.lists(st.lists(st.text(max_size=30), max_size=6), max_size=10))
def test_any_csv_text_in_any_encoding_reads_or_is_refused(rows):
    text = "\n".join(",".join(json.dumps(cell, ensure_ascii=False) for cell in row) for row in rows)
    for encoding in ("utf-8-sig", "gb18030", "utf-16"):
        try:
            data = text.encode(encoding)
        except UnicodeEncodeError:
            continue
        try:
            read_table("会议.csv", data, max_rows=50)
        except DomainError as error:
            assert error.message


# --- API bodies and query strings --------------------------------------------------------------

BODY_SCHEMAS = [
    schemas.SeriesSchema(), schemas.SeriesSchema(partial=True), schemas.SessionSchema(),
    schemas.SessionPatchSchema(partial=True), schemas.CancelSchema(), schemas.LectureSchema(),
    schemas.SpeakerSchema(), schemas.UnitSchema(), schemas.ParticipantSchema(),
    schemas.EnrollmentSchema(),
]  # fmt: skip
QUERY_SCHEMAS = [
    schemas.ListArgs(), schemas.SessionListArgs(), schemas.PeopleListArgs(),
    schemas.EnrollmentListArgs(), schemas.AttendanceArgs(),
]  # fmt: skip


@SETTINGS
@given(schema=st.sampled_from(BODY_SCHEMAS), body=JSON)
def test_any_json_body_loads_within_its_bounds_or_is_refused(app, schema, body):
    with app.test_request_context():
        try:
            loaded = schema.load(body)
        except ValidationError as error:
            assert error.messages
            return
    for name, value in loaded.items():
        if isinstance(value, str):
            assert "\x00" not in value, name
        if isinstance(value, int) and not isinstance(value, bool):
            assert -1 < value <= 2**31 - 1, name
        if isinstance(value, datetime):
            assert value.tzinfo is not None and FIRST_YEAR <= value.year <= LAST_YEAR, name


@SETTINGS
@given(
    schema=st.sampled_from(QUERY_SCHEMAS),
    query=st.dictionaries(
        st.sampled_from(
            [
                "limit",
                "cursor",
                "series_id",
                "unit_id",
                "starts_after",
                "starts_before",
                "status",
                "colour",
            ]
        ),
        st.text(max_size=30),
    ),  # fmt: skip
)
def test_any_query_string_loads_within_its_bounds_or_is_refused(app, schema, query):
    with app.test_request_context():
        try:
            loaded = schema.load(query)
        except ValidationError:
            return
    assert 1 <= loaded["limit"] <= 200 if "limit" in loaded else True
    for key in ("series_id", "unit_id"):
        assert 1 <= loaded.get(key, 1) <= 2**31 - 1


@SETTINGS
@given(body=JSON, cursor=st.text(max_size=60))
def test_the_api_answers_any_body_or_cursor_without_a_server_error(app, make_user, body, cursor):
    from webapp.api.tokens import Scope, create_token
    from webapp.db import db, utcnow
    from webapp.people.models import Role

    secret = app.config.setdefault("_test_api_secret", None)
    if secret is None:
        admin = make_user(Role.ADMIN)
        secret = create_token(admin, name="t", scope=Scope.WRITE, days=1, now=utcnow())[1]
        db.session.commit()
        app.config["_test_api_secret"] = secret
    client = app.test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    for response in (
        client.post("/api/v1/series", headers=headers, json=body),
        client.post("/api/v1/units", headers=headers, json=body),
        client.get("/api/v1/sessions", headers=headers, query_string={"cursor": cursor}),
    ):
        assert response.status_code < 500, response.text
        assert response.is_json
