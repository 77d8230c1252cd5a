"""Every page of every role in real Chromium, at a phone's 390 px and a desktop's 1366 px, in
Chinese and in English. A page fails on horizontal overflow of the page itself
(`document.documentElement.scrollWidth > innerWidth`: a wide table must scroll inside its card),
on any console error (a script error, a resource or style the Content-Security-Policy blocks),
and on any serious or critical accessibility violation found by axe-core (the npm package,
vendored in tests/vendor/axe-core).

The route-permission table drives the sweep: every GET endpoint in webapp.permissions.ROUTES
is either a page (PAGES gives the URLs of it in the demo world: the Lugouqiao classroom with a
live session, a past one with attendance, a moved and a cancelled one, imports waiting for
review) or a download or machine endpoint (NOT_PAGES, with what it is). A new route fails
`test_every_get_route_is_a_page_or_says_what_it_is` until it is one or the other. Each role
visits every page the table lets it open (found by asking the app first), and the pages it
may not open answer with the error page, which is swept too.

Pages do not depend on the database: the sweep runs on the SQLite pass only."""

import io
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from flask import url_for
from sqlalchemy import select

from tests.conftest import backend_name
from tests.helpers import csrf_token_from, log_in, post_form, xlsx_bytes
from webapp.db import db, utcnow
from webapp.demo import data
from webapp.demo.services import ensure_live_session, load_demo
from webapp.hooks.services import create_hook
from webapp.people.models import Role, Speaker, Unit, User
from webapp.people.services import find_user_by_identifier
from webapp.permissions import ROUTES
from webapp.reminders.dispatch import dispatch_due
from webapp.reminders.planning import plan_reminders
from webapp.series.models import Series
from webapp.sessions.joining import record_join
from webapp.sessions.services import cancel_session, create_session, reschedule_session

pytestmark = pytest.mark.skipif(
    backend_name() != "sqlite", reason="pages are the same on both databases: swept once"
)

AXE = (Path(__file__).resolve().parents[1] / "vendor" / "axe-core" / "axe.min.js").read_text()
SIZES = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1366, "height": 768}}
ROLES = ("anonymous", "participant", "liaison", "organizer", "admin")

# GET endpoints that are not pages, and what they are.
NOT_PAGES = {
    "static": "stylesheet, scripts, vendored files",
    "home.health": "the load balancer's health check (JSON)",
    "auth.login_link": "a one-time log-in link: logs in and redirects",
    "feeds.private_feed": "iCalendar feed",
    "feeds.public_series_feed": "iCalendar feed",
    "feeds.session_download": "iCalendar download",
    "feeds.download_upcoming": "iCalendar download",
    "series.import_template": "Excel template",
    "attendance.session_report_csv": "CSV export",
    "attendance.session_report_xlsx": "Excel export",
    "attendance.series_report_csv": "CSV export",
    "attendance.series_report_xlsx": "Excel export",
    "attendance.closing": "Excel workbook",
    "attendance.signin_sheets": "PDF",
    "streaming.live_json": "JSON for the organizer's live page",
    "streaming.status_json": "JSON for the player",
    "streaming.recording_file": "video file",
    "streaming.hls_auth": "nginx's auth subrequest",
    "admin.audit_export": "CSV / Excel export",
    "api-docs.openapi_json": "the API's OpenAPI document (JSON)",
    **{
        f"api_{endpoint}": "the JSON API (tests/api)"
        for endpoint in (
            "series.series_list", "series.series_get", "sessions.sessions_list",
            "sessions.sessions_get", "sessions.lectures_list", "people.speakers_list",
            "people.speakers_get", "people.units_list", "people.units_get",
            "people.participants_list", "people.participants_get",
            "enrollments.enrollments_list", "attendance.attendance_get",
        )
    },  # fmt: skip
}

# The pages and which URLs of the world show them: (endpoint, {argument: key in the world}).
PAGES = [
    ("home.index", {}),
    ("home.schedule", {}),
    ("attendance.mine", {}),
    ("auth.login", {}),
    ("auth.login_code", {}),
    ("auth.login_code_enter", {}),
    ("auth.forgot_password", {}),
    ("auth.reset_password", {}),
    ("auth.password", {}),
    ("reminders.preferences", {}),
    ("feeds.subscribe", {}),
    ("series.detail", {"series_id": "series"}),
    ("series.new", {}),
    ("series.edit", {"series_id": "series"}),
    ("series.manage", {"series_id": "series"}),
    ("series.participants", {"series_id": "series"}),
    ("series.import_upload", {"series_id": "series"}),
    ("series.import_preview", {"series_id": "series", "batch_id": "batch"}),
    ("series.roster", {"series_id": "series", "unit_id": "unit"}),
    ("reminders.rules", {"series_id": "series"}),
    ("attendance.series_report", {"series_id": "series"}),
    ("attendance.unit_attendance", {"series_id": "series", "unit_id": "unit"}),
    ("sessions.new", {"series_id": "series"}),
    ("sessions.detail", {"session_id": "moved"}),
    ("sessions.detail", {"session_id": "cancelled"}),
    ("sessions.detail", {"session_id": "live"}),
    ("sessions.detail", {"session_id": "past"}),
    ("sessions.edit", {"session_id": "moved"}),
    ("sessions.reschedule", {"session_id": "moved"}),
    ("sessions.cancel", {"session_id": "moved"}),
    ("sessions.agenda", {"session_id": "moved"}),
    ("sessions.edit_lecture", {"lecture_id": "lecture"}),
    ("streaming.stream", {"session_id": "live"}),
    ("streaming.live", {"session_id": "live"}),
    ("streaming.watch", {"session_id": "live"}),
    ("attendance.session_report", {"session_id": "past"}),
    ("attendance.participant", {"session_id": "past", "user_id": "participant"}),
    ("attendance.import_upload", {"session_id": "past"}),
    ("attendance.import_preview", {"session_id": "past", "import_id": "attendance_import"}),
    ("attendance.checkin", {"session_id": "live"}),
    ("attendance.checkin_screen", {"session_id": "live"}),
    ("people.speakers", {}),
    ("people.new_speaker", {}),
    ("people.edit_speaker", {"speaker_id": "speaker"}),
    ("admin.index", {}),
    ("admin.users", {}),
    ("admin.edit_user", {"user_id": "participant"}),
    ("admin.units", {}),
    ("admin.unit", {"unit_id": "unit"}),
    ("admin.audit_log", {}),
    ("admin.settings_page", {}),
    ("admin.webhooks", {}),
    ("admin.webhook", {"hook_id": "hook"}),
    ("tokens.index", {}),
    ("admin.status", {}),
    ("admin.channels", {}),
    ("admin.mailbox", {}),
    ("admin.mail_message", {"name": "mail"}),
]

MEETING_EXPORT = """\ufeff腾讯会议参会成员明细
用户昵称,手机号,部门,入会时间,退会时间,参会时长
{name},{phone},,{start},{end},100分钟
小王,,,{start},{end},120分钟
"""

CHECK = """async () => {
  const overflow = document.documentElement.scrollWidth - window.innerWidth;
  const result = await axe.run(document, {resultTypes: ['violations']});
  const violations = result.violations
    .filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.slice(0, 3)
      .map(n => n.target.join(' ')).join(' | ')}`);
  let widest = '';  // the innermost element reaching past the right edge
  if (overflow > 0) {
    for (const element of document.querySelectorAll('body *')) {
      if (element.getBoundingClientRect().right > window.innerWidth + 1) {
        const classes = typeof element.className === 'string' ? element.className.trim() : '';
        const dotted = classes ? '.' + classes.split(/\\s+/).join('.') : '';
        widest = element.tagName.toLowerCase() + dotted;
      }
    }
  }
  return {overflow, widest, violations};
}"""


def test_every_get_route_is_a_page_or_says_what_it_is(app):
    get_endpoints = {
        rule.endpoint for rule in app.url_map.iter_rules() if "GET" in (rule.methods or ())
    }
    pages = {endpoint for endpoint, _ in PAGES}
    assert get_endpoints - pages - set(NOT_PAGES) == set(), "GET routes neither swept nor named"
    assert (pages | set(NOT_PAGES)) - set(ROUTES) == set(), "not in the permission table"
    assert pages & set(NOT_PAGES) == set()


def meeting_export(session, person) -> bytes:
    start = session.starts_at.astimezone(ZoneInfo(session.series.timezone)) + timedelta(minutes=10)
    return MEETING_EXPORT.format(
        name=person.display_name,
        phone=person.phone,
        start=f"{start:%Y-%m-%d %H:%M:%S}",
        end=f"{start + timedelta(minutes=100):%Y-%m-%d %H:%M:%S}",
    ).encode("utf-8")


def participant_sheet() -> bytes:
    return xlsx_bytes(
        [
            ["卢沟桥乡学员名单"],
            ["姓名", "手机号", "邮箱", "单位", "职务"],
            ["赵德明", "13910009001", "", "大瓦窑村委会", "党组织书记"],
            ["钱秀英", "13910009002", "", "新发地村", "村委会委员"],
            ["孙志刚", "1391000", "", "小瓦窑村", ""],
        ]
    )


def upload(client, url: str, fields: dict) -> str:
    token = csrf_token_from(client.get(url).text)
    response = client.post(
        url, data={"csrf_token": token, **fields}, content_type="multipart/form-data"
    )
    assert response.status_code == 302, response.text[:2000]
    return response.headers["Location"]


@pytest.fixture
def world(app):
    """The demo classroom, with one of every state a page can show."""
    now = utcnow()
    load_demo(now=now)
    live = ensure_live_session(now=now)
    series = db.session.scalar(select(Series).where(Series.title == data.SERIES_TITLE))
    organizer = db.session.scalar(select(User).where(User.email == data.ORGANIZER["email"]))
    people = [find_user_by_identifier(cadre["phone"]) for cadre in data.cadres()]
    participant, liaison = people[0], people[data.LIAISON_INDEX]
    upcoming = [s for s in series.sessions if s.id != live.id]
    moved, cancelled = upcoming[0], upcoming[-1]
    for hours in (2, 1):
        reschedule_session(
            moved,
            starts_at=moved.starts_at + timedelta(hours=hours),
            ends_at=moved.ends_at + timedelta(hours=hours),
            by=organizer,
            now=now,
            reason="讲师航班改期，课程顺延",
        )
    cancel_session(cancelled, reason="场地检修", by=organizer, now=now)
    past_start = (now - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    past = create_session(
        series,
        starts_at=past_start,
        ends_at=past_start + timedelta(hours=2),
        title="往期：乡村振兴政策解读",
        now=past_start - timedelta(days=7),
    )
    for person in people[:40]:
        record_join(past, person, now=past_start + timedelta(minutes=len(person.display_name)))
        record_join(live, person, now=now)
    for person in (users := db.session.scalars(select(User).where(User.locale.is_not(None)))):
        person.locale = None  # the browser's language decides
    del users
    day_before = upcoming[1].starts_at - timedelta(days=1)  # its reminders go to the sink
    plan_reminders(now=day_before - timedelta(minutes=1))
    dispatch_due(worker_id="sweep", now_fn=lambda: day_before)
    db.session.commit()
    app.config["SMS_PROVIDER"] = "sink"  # from now on: sign-in codes by SMS, as in the demo

    client = app.test_client()
    log_in(client, data.ORGANIZER["email"], data.DEMO_PASSWORDS[Role.ORGANIZER])
    batch_url = upload(
        client,
        f"/series/{series.id}/import",
        {"sheet": (io.BytesIO(participant_sheet()), "学员名单.xlsx")},
    )
    import_url = upload(
        client,
        f"/sessions/{past.id}/attendance/import",
        {
            "platform": "tencent_meeting",
            "sheet": (io.BytesIO(meeting_export(past, participant)), "会议.csv"),
        },
    )
    mailbox = client.get("/admin/mail")  # organizer: refused; the admin reads it below
    assert mailbox.status_code == 403
    admin = app.test_client()
    log_in(admin, data.ADMIN["email"], data.DEMO_PASSWORDS[Role.ADMIN])
    mail_name = admin.get("/admin/mail").text.split('href="/admin/mail/')[1].split('"')[0]
    hook = create_hook("区委组织部学籍系统", "https://example.org/yunketang",
                       ["session.rescheduled", "session.cancelled"], now=now)  # fmt: skip
    cancel_session(upcoming[1], reason="讲师临时有事", by=organizer, now=now)  # queues an event
    db.session.commit()
    return {
        "series": series.id,
        "unit": db.session.scalar(select(Unit.id).where(Unit.name == data.LIAISON_UNIT)),
        "moved": moved.id,
        "cancelled": cancelled.id,
        "live": live.id,
        "past": past.id,
        "lecture": moved.lectures[0].id,
        "speaker": db.session.scalar(select(Speaker.id).limit(1)),
        "participant": participant.id,
        "batch": int(batch_url.rstrip("/").rsplit("/", 1)[1].split("?")[0]),
        "attendance_import": int(import_url.rstrip("/").rsplit("/", 1)[1].split("?")[0]),
        "mail": mail_name,
        "hook": hook.id,
        "spare_phones": iter([person.phone for person in people[2:]]),
        "logins": {
            "participant": (participant.phone, data.DEMO_PASSWORDS[Role.PARTICIPANT]),
            "liaison": (liaison.phone, data.DEMO_PASSWORDS[Role.PARTICIPANT]),
            "organizer": (data.ORGANIZER["email"], data.DEMO_PASSWORDS[Role.ORGANIZER]),
            "admin": (data.ADMIN["email"], data.DEMO_PASSWORDS[Role.ADMIN]),
        },
    }


def urls_of(app, world) -> list[str]:
    with app.test_request_context():
        return [
            url_for(endpoint, **{name: world[key] for name, key in arguments.items()})
            for endpoint, arguments in PAGES
        ]


def ask_for_codes(client, world) -> None:
    """Signed out, someone asks for a sign-in code and a password reset: the pages where the
    codes are typed in open only then."""
    for path, fields, then in (
        ("/login/code", {"phone": next(world["spare_phones"])}, "/login/code/enter"),
        ("/password/forgot", {"identifier": next(world["spare_phones"])}, "/password/reset"),
    ):
        response = post_form(client, path, path, fields)
        assert response.headers.get("Location") == then, (path, response.status_code)


def pages_for(app, world, role: str) -> list[str]:
    """The pages this role may open (200), and the error pages of a few it may not."""
    client = app.test_client()
    if role == "anonymous":
        ask_for_codes(client, world)
    else:
        log_in(client, *world["logins"][role])
    pages, refused = [], {}
    for url in urls_of(app, world):
        response = client.get(url)
        if response.status_code == 200:
            assert response.mimetype == "text/html", url
            pages.append(url)
        elif response.status_code in (403, 404):
            refused.setdefault(response.status_code, url)  # one error page of each kind
        else:
            assert response.status_code == 302, (url, response.status_code)
    return pages + sorted(refused.values())


def sweep(browser, base: str, role: str, world, urls: list[str], locale: str, size: str):
    problems = []
    context = browser.new_context(locale=locale, viewport=SIZES[size])
    context.set_default_timeout(15_000)
    context.add_init_script(script=AXE)  # by the browser itself: not blocked by the CSP
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        if role == "anonymous":
            for path, field, then in (
                ("/login/code", "#phone", "/login/code/enter"),
                ("/password/forgot", "#identifier", "/password/reset"),
            ):
                page.goto(base + path)
                page.fill(field, next(world["spare_phones"]))  # a code a minute each
                page.click("button.primary")
                page.wait_for_url(base + then)
        else:
            identifier, password = world["logins"][role]
            page.goto(f"{base}/login")
            page.fill("#identifier", identifier)
            page.fill("#password", password)
            page.click("button.primary")
            page.wait_for_url(f"{base}/")
        for url in urls:
            errors.clear()
            response = page.goto(base + url, wait_until="load")
            status = response.status if response else 0
            found = page.evaluate(CHECK)
            where = f"{role} {size} {locale} {url}"
            if found["overflow"] > 0:
                problems.append(f"{where}: {found['overflow']} px wider ({found['widest']})")
            if status == 200:  # an error page's own status is logged by Chromium as an error
                problems.extend(f"{where}: console: {error}" for error in errors)
            problems.extend(f"{where}: axe: {violation}" for violation in found["violations"])
    finally:
        context.close()
    return problems


@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_every_page_fits_a_phone_and_a_desktop_and_passes_axe(
    app, world, live_server, browser, locale
):
    problems = []
    for role in ROLES:
        urls = pages_for(app, world, role)
        assert urls, role
        for size in SIZES:
            problems += sweep(browser, live_server, role, world, urls, locale, size)
    if problems:
        pytest.fail(f"{len(problems)} problems:\n" + "\n".join(problems), pytrace=False)


def test_the_sweep_sees_each_role_s_own_pages(app, world):
    """The world really shows each role its pages (else the sweep would pass by seeing less):
    every page is seen by someone, the admin sees all but the signed-out ones."""
    seen = {role: set(pages_for(app, world, role)) for role in ROLES}
    every = set(urls_of(app, world))
    signed_out = {"/login", "/login/code", "/login/code/enter", "/password/forgot"}
    signed_out.add("/password/reset")
    assert seen["anonymous"] >= signed_out
    assert every - seen["admin"] == signed_out - {"/password/forgot"}
    assert every - set().union(*seen.values()) == set()
    assert f"/series/{world['series']}/units/{world['unit']}/roster" in seen["liaison"]
    assert f"/sessions/{world['live']}/watch" in seen["participant"]
    assert "/admin/users" not in seen["organizer"]  # (/admin/ is there: its 403 page)


def test_the_checks_catch_what_they_look_for(browser):
    """The sweep's own check, on a page built to break each rule once: it is not blind."""
    context = browser.new_context(viewport=SIZES["phone"])
    context.add_init_script(script=AXE)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_content(
        '<html lang="en"><body><main><div id="wide">wide</div><img src="data:,">'
        "<button></button><script>notDefined()</script></main></body></html>"
    )
    page.evaluate("document.getElementById('wide').style.width = '600px'")
    found = page.evaluate(CHECK)
    context.close()
    assert found["overflow"] == 600 - 390 + 8 and found["widest"] == "div"
    assert any(v.startswith("image-alt (critical)") for v in found["violations"])
    assert any(v.startswith("button-name (critical)") for v in found["violations"])
    assert len(errors) == 1 and "notDefined is not defined" in errors[0]
