"""Who may use which route: one table, checked before every request.

Every endpoint of the app is in ROUTES; a request to an endpoint missing from it is refused
(and tests/test_route_permissions.py fails for it, walking `app.url_map`). A rule looks at
the signed-in person and the objects the URL names (a series, or a session, lecture or unit
of one) and answers: go on, log in first, forbidden (403), or not found (404: the object does
not exist, or it is someone else's private thing). Views still load their objects and check
that sub-objects belong to them (an enrollment of this series), but never decide who may
come in.
"""

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from flask import abort, current_app, request
from flask_login import current_user

from webapp.api.tokens import Scope, authenticate_request, current_token, may_have_tokens
from webapp.auth.access import login_manager
from webapp.db import db
from webapp.feeds.links import (
    may_have,
)
from webapp.feeds.models import FeedKind, FeedToken
from webapp.people.models import Role, Unit, User
from webapp.series.access import (
    can_manage_series,
    can_view_series,
)
from webapp.series.models import Series
from webapp.series.rosters import (
    can_open_roster,
)
from webapp.sessions.models import Lecture, LectureSession


class Outcome(StrEnum):
    ALLOW = "allow"
    LOG_IN = "log in"  # HTML: redirect to the login page; JSON: 401
    FORBIDDEN = "forbidden"  # 403
    NOT_FOUND = "not found"  # 404


Check = Callable[[User, dict], Outcome]


@dataclass(frozen=True)
class Rule:
    """Who may use a route, in words (for the docs and the test's report) and as a check."""

    who: str
    check: Check


def _series_of(args: dict) -> Series:
    """The series a URL is about: by its id, or through its session or lecture."""
    if "series_id" in args:
        return db.get_or_404(Series, args["series_id"])
    if "session_id" in args:
        return db.get_or_404(LectureSession, args["session_id"]).series
    if "lecture_id" in args:
        return db.get_or_404(Lecture, args["lecture_id"]).session.series
    raise LookupError("the route names no series, session or lecture")


def _signed_in(then: Check) -> Check:
    def check(user: User, args: dict) -> Outcome:
        if not user.is_authenticated:
            return Outcome.LOG_IN
        return then(user, args)

    return check


def _allow(_user, _args) -> Outcome:
    return Outcome.ALLOW


def _admins(user: User, _args) -> Outcome:
    return Outcome.ALLOW if user.is_admin else Outcome.FORBIDDEN


def _organizers(user: User, _args) -> Outcome:
    return Outcome.ALLOW if user.is_admin or user.has_role(Role.ORGANIZER) else Outcome.FORBIDDEN


def _series_organizers(user: User, args: dict) -> Outcome:
    return Outcome.ALLOW if can_manage_series(user, _series_of(args)) else Outcome.FORBIDDEN


def _readers(user: User, args: dict) -> Outcome:
    series = _series_of(args)
    if can_view_series(user, series):
        return Outcome.ALLOW
    return Outcome.FORBIDDEN if user.is_authenticated else Outcome.LOG_IN


def _readers_else_not_found(user: User, args: dict) -> Outcome:
    outcome = _readers(user, args)
    return Outcome.NOT_FOUND if outcome == Outcome.LOG_IN else outcome


def _roster_keepers(user: User, args: dict) -> Outcome:
    series = _series_of(args)
    unit = db.get_or_404(Unit, args["unit_id"])
    return Outcome.ALLOW if can_open_roster(user, series, unit) else Outcome.FORBIDDEN


def _token_owner(user: User, args: dict) -> Outcome:
    token = db.session.get(FeedToken, args["token_id"])
    return Outcome.ALLOW if token is not None and token.user_id == user.id else Outcome.NOT_FOUND


def _feed_choosers(user: User, args: dict) -> Outcome:
    try:
        kind = FeedKind(args["kind"])
    except ValueError:
        return Outcome.NOT_FOUND
    return Outcome.ALLOW if may_have(user, kind, args.get("target_id")) else Outcome.FORBIDDEN


def _api(scope: Scope, then: Check) -> Check:
    """An API call: a usable bearer token (else 401), of the scope the route needs (else
    403), then the same rule as the pages."""

    def check(user: User, args: dict) -> Outcome:
        token = current_token()
        if token is None:
            return Outcome.LOG_IN
        if scope == Scope.WRITE and token.scope != Scope.WRITE:
            return Outcome.FORBIDDEN
        if not may_have_tokens(user):
            return Outcome.FORBIDDEN
        return then(user, args)

    return check


def _series_organizers_else_404(user: User, args: dict) -> Outcome:
    # The API answers 404 for series the caller does not organize, for the object of a
    # route and for objects under it alike: it does not confirm that they exist.
    outcome = _series_organizers(user, args)
    return Outcome.NOT_FOUND if outcome == Outcome.FORBIDDEN else outcome


ANYONE = Rule("anyone, signed in or not", _allow)
SIGNED_IN = Rule("anyone signed in", _signed_in(_allow))
ADMINS = Rule("admins", _signed_in(_admins))
ORGANIZERS = Rule("organizers and admins", _signed_in(_organizers))
SERIES_ORGANIZERS = Rule("the series' organizers and admins", _signed_in(_series_organizers))
READERS = Rule(
    "who may see the series: anyone for a public one; else its participants, its units' "
    "liaisons, its organizers and admins",
    _readers,
)
READERS_ELSE_404 = Rule("like READERS, but anonymous callers get 404", _readers_else_not_found)
SIGNED_IN_READERS = Rule("READERS, signed in", _signed_in(_readers))
ROSTER_KEEPERS = Rule(
    "liaisons of the unit (or a unit above it) for a series it has members in; the series' "
    "organizers and admins",
    _signed_in(_roster_keepers),
)
FEED_CHOOSERS = Rule(
    "who may have that calendar: their own, a series they may see, a unit they are liaison "
    "of (admins: any unit)",
    _signed_in(_feed_choosers),
)
TOKEN_OWNER = Rule("the owner of the calendar link (404 for anyone else)", _signed_in(_token_owner))
API_READ = Rule("API: an organizer's or admin's token", _api(Scope.READ, _allow))
API_WRITE = Rule("API: an organizer's or admin's read-write token", _api(Scope.WRITE, _allow))
API_ADMIN_WRITE = Rule("API: an admin's read-write token", _api(Scope.WRITE, _admins))
API_SERIES_READ = Rule(
    "API: a token of the series' organizers or an admin (404 for others)",
    _api(Scope.READ, _series_organizers_else_404),
)
API_SERIES_WRITE = Rule(
    "API: a read-write token of the series' organizers or an admin (404 for others)",
    _api(Scope.WRITE, _series_organizers_else_404),
)

ROUTES: dict[str, Rule] = {
    # open to anyone
    "static": ANYONE,
    "home.health": ANYONE,
    "auth.login": ANYONE,
    "auth.login_link": ANYONE,
    "auth.login_code": ANYONE,
    "auth.login_code_enter": ANYONE,
    "auth.forgot_password": ANYONE,
    "auth.reset_password": ANYONE,
    "auth.logout": ANYONE,
    "i18n.set_language": ANYONE,
    "feeds.private_feed": ANYONE,  # the token in the URL decides
    "feeds.public_series_feed": ANYONE,  # only public, published series have one (else 404)
    "streaming.rtmp_callback": ANYONE,  # nginx-rtmp: the shared secret in the URL decides
    "streaming.hls_auth": ANYONE,  # nginx's auth_request: 204/401/403 by the login (the view)
    "streaming.heartbeat": ANYONE,  # the signed viewer token in the body decides
    # a person's own pages
    "home.index": SIGNED_IN,
    "home.schedule": SIGNED_IN,
    "attendance.mine": SIGNED_IN,  # their own record only
    "auth.password": SIGNED_IN,
    "reminders.preferences": SIGNED_IN,
    "feeds.subscribe": SIGNED_IN,
    "feeds.download_upcoming": SIGNED_IN,
    "feeds.create": FEED_CHOOSERS,
    "feeds.rotate": TOKEN_OWNER,
    "feeds.revoke": TOKEN_OWNER,
    # reading a series
    "series.detail": READERS,
    "sessions.detail": READERS,
    "feeds.session_download": READERS_ELSE_404,
    "series.enroll_self": SIGNED_IN_READERS,  # the service checks self-enrollment is open
    "series.leave": SIGNED_IN_READERS,
    "sessions.join": SIGNED_IN_READERS,  # the view checks the person is enrolled
    "streaming.watch": SIGNED_IN_READERS,  # the view checks the person is enrolled
    "streaming.status_json": SIGNED_IN_READERS,  # likewise
    "streaming.recording_file": SIGNED_IN_READERS,  # likewise
    "attendance.checkin": SIGNED_IN_READERS,  # likewise
    "attendance.excuse": SIGNED_IN_READERS,  # likewise, for their own record
    "series.roster": ROSTER_KEEPERS,
    "attendance.unit_attendance": ROSTER_KEEPERS,  # a liaison sees their unit
    # organizing
    "series.new": ORGANIZERS,
    "people.speakers": ORGANIZERS,
    "people.new_speaker": ORGANIZERS,
    "people.edit_speaker": ORGANIZERS,
    **{
        endpoint: SERIES_ORGANIZERS
        for endpoint in (
            "series.edit",
            "series.publish",
            "series.archive",
            "series.unarchive",
            "series.manage",
            "series.participants",
            "series.add_participant",
            "series.add_unit",
            "series.set_quota",
            "series.remove_participant",
            "series.import_upload",
            "series.import_template",
            "series.import_preview",
            "series.import_links",
            "series.login_links",
            "series.participant_login_link",
            "sessions.new",
            "sessions.edit",
            "sessions.reschedule",
            "sessions.cancel",
            "sessions.delete",
            "sessions.agenda",
            "sessions.edit_lecture",
            "sessions.remove_lecture",
            "sessions.reorder_lecture",
            "streaming.stream",
            "streaming.rotate",
            "streaming.set_status",
            "streaming.live",
            "streaming.live_json",
            "attendance.session_report",
            "attendance.session_report_csv",
            "attendance.session_report_xlsx",
            "attendance.participant",
            "attendance.series_report",
            "attendance.checkin_screen",
            "attendance.decide",
            "attendance.recompute",
            "attendance.import_upload",
            "attendance.import_preview",
            "attendance.series_report_csv",
            "attendance.series_report_xlsx",
            "attendance.closing",
            "attendance.signin_sheets",
            "reminders.rules",
            "reminders.add_robot",
            "reminders.remove_robot",
            "reminders.remove_rule",
        )
    },
    "tokens.index": ORGANIZERS,  # their own API tokens
    "tokens.revoke": ORGANIZERS,  # the view answers 404 for someone else's token
    # the JSON API (webapp/api): lists show only what the caller organizes
    "api-docs.openapi_json": ANYONE,
    "api_series.series_list": API_READ,
    "api_series.series_create": API_WRITE,
    "api_series.series_get": API_SERIES_READ,
    "api_series.series_update": API_SERIES_WRITE,
    "api_sessions.sessions_list": API_READ,
    "api_sessions.sessions_create": API_SERIES_WRITE,
    "api_sessions.sessions_get": API_SERIES_READ,
    "api_sessions.sessions_update": API_SERIES_WRITE,
    "api_sessions.sessions_cancel": API_SERIES_WRITE,
    "api_sessions.lectures_list": API_SERIES_READ,
    "api_sessions.lectures_create": API_SERIES_WRITE,
    "api_sessions.lectures_update": API_SERIES_WRITE,
    "api_sessions.lectures_delete": API_SERIES_WRITE,
    "api_series.series_publish": API_SERIES_WRITE,
    "api_series.series_archive": API_SERIES_WRITE,
    "api_people.participants_update": API_ADMIN_WRITE,
    "api_people.speakers_list": API_READ,
    "api_people.speakers_create": API_WRITE,
    "api_people.speakers_get": API_READ,
    "api_people.speakers_update": API_WRITE,
    "api_people.units_list": API_READ,
    "api_people.units_create": API_ADMIN_WRITE,
    "api_people.units_get": API_READ,
    "api_people.units_update": API_ADMIN_WRITE,
    "api_people.participants_list": API_READ,  # an organizer: their series' participants
    "api_people.participants_get": API_READ,  # likewise (404 for anyone else)
    "api_people.participants_create": API_WRITE,
    "api_enrollments.enrollments_list": API_SERIES_READ,
    "api_enrollments.enrollments_create": API_SERIES_WRITE,
    "api_enrollments.enrollments_delete": API_SERIES_WRITE,
    "api_attendance.attendance_get": API_SERIES_READ,
    # administering
    **{
        endpoint: ADMINS
        for endpoint in (
            "admin.index",
            "admin.users",
            "admin.units",
            "admin.remove_liaison_view",
            "admin.unit",
            "admin.unit_active",
            "admin.audit_log",
            "admin.audit_export",
            "admin.settings_page",
            "admin.webhooks",
            "admin.webhook",
            "admin.webhook_secret",
            "admin.webhook_remove",
            "admin.webhook_redeliver",
            "admin.status",
            "admin.retry",
            "admin.retry_failed",
            "admin.retry_failed_feeds",
            "admin.mailbox",
            "admin.mail_message",
            "admin.channels",
            "admin.edit_user",
            "admin.set_user_active",
            "admin.user_login_link",
        )
    },
}


def check_route() -> None:
    """Before every request: refuse what the table does not allow. An endpoint missing from
    the table is refused too (403), and logged: the table is to be completed."""
    endpoint = request.endpoint
    if endpoint is None:
        return None  # no route matched: routing answers 404 or 405
    rule = ROUTES.get(endpoint)
    if rule is None:
        current_app.logger.error("no permission rule for endpoint %s", endpoint)
        abort(403)
    is_api = endpoint.startswith("api_")
    if is_api:
        authenticate_request()  # the token's owner, never the cookie's, is the user now
    outcome = rule.check(current_user, request.view_args or {})
    if outcome == Outcome.LOG_IN:
        if is_api:
            abort(401)
        return login_manager.unauthorized()
    if outcome == Outcome.FORBIDDEN:
        abort(403)
    if outcome == Outcome.NOT_FOUND:
        abort(404)
    return None
