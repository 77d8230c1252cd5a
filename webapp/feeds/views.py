"""Feed endpoints (stored bytes, HTTP caching), the one-session download and the page where
people subscribe and manage their links."""

from urllib.parse import quote, urlencode

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.http import is_resource_modified

from webapp.calendar.ical import session_calendar
from webapp.db import db, utcnow
from webapp.feeds.builder import etag_for
from webapp.feeds.content import upcoming_calendar
from webapp.feeds.fetches import (
    fetch_counter,
)
from webapp.feeds.links import (
    active_token,
    allowed_feeds,
    link_token,
    revoke_token,
    rotate_token,
    still_allowed,
    token_for,
)
from webapp.feeds.models import FeedKind, FeedToken
from webapp.feeds.serving import (
    FeedMeta,
    feed_body,
    fresh_feed_meta,
    lookup_feed,
    public_feed_meta,
)
from webapp.forms import ActionForm
from webapp.people.models import Unit
from webapp.qr import qr_svg
from webapp.series.models import Series
from webapp.sessions.models import LectureSession

bp = Blueprint("feeds", __name__)

CALENDAR_TYPE = "text/calendar; charset=utf-8"
# Calendar apps poll; let them (and proxies, for public feeds) keep a copy for a while and
# then ask again with If-None-Match, which costs one 304.
PRIVATE_CACHE = "private, max-age=300, must-revalidate"
PUBLIC_CACHE = "public, max-age=300, must-revalidate"


def _calendar_response(
    body: bytes, *, etag: str, last_modified, cache: str, filename: str, attachment: bool = False
) -> Response:
    response = Response(body, mimetype="text/calendar")
    response.headers["Content-Type"] = CALENDAR_TYPE
    response.set_etag(etag)
    response.last_modified = last_modified
    response.headers["Cache-Control"] = cache
    disposition = "attachment" if attachment else "inline"
    response.headers["Content-Disposition"] = (
        f"{disposition}; filename=\"calendar.ics\"; filename*=UTF-8''{quote(filename)}"
    )
    response = response.make_conditional(request)
    # make_conditional() adds a Date header, and so does every server: keep the server's.
    del response.headers["Date"]
    return response


@bp.route("/feeds/<token>.ics", methods=["GET", "HEAD"])
def private_feed(token: str):
    """A private feed: the token decides whose; unknown or revoked tokens get 404. The path
    reads two small rows; the body comes from memory, and a 304 needs no body at all."""
    now = utcnow()
    found = lookup_feed(token, now=now)
    if found is None:
        abort(404)
    match, meta = found
    if not still_allowed(match):
        abort(404)
    if meta is None:  # missing, stale past the grace period, or a day old: render it now
        meta, _rendered = fresh_feed_meta(match.key, now=now)
        db.session.commit()
    many = fetch_counter.record(match.id, now=now, user_agent=request.headers.get("User-Agent", ""))
    response = _serve(meta, cache=PRIVATE_CACHE, filename="yunketang.ics")
    if many:
        app = current_app._get_current_object()

        def write_counts():
            with app.app_context():
                fetch_counter.flush()

        response.call_on_close(write_counts)  # after the response has gone out
    return response


def _serve(meta: FeedMeta, *, cache: str, filename: str) -> Response:
    if not is_resource_modified(request.environ, etag=meta.etag, last_modified=meta.last_modified):
        response = Response(status=304)
        response.set_etag(meta.etag)
        response.last_modified = meta.last_modified
        response.headers["Cache-Control"] = cache
        return response
    return _calendar_response(
        feed_body(meta),
        etag=meta.etag,
        last_modified=meta.last_modified,
        cache=cache,
        filename=filename,
    )


@bp.route("/series/<int:series_id>/calendar.ics", methods=["GET", "HEAD"])
def public_series_feed(series_id: int):
    """A public series' feed needs no token."""
    meta, title, rendered = public_feed_meta(series_id, now=utcnow())
    if meta is None:
        abort(404)  # no such series, or not a public, published one
    if rendered:
        db.session.commit()
    return _serve(meta, cache=PUBLIC_CACHE, filename=f"{title}.ics")


@bp.route("/sessions/<int:session_id>/calendar.ics", methods=["GET", "HEAD"])
def session_download(session_id: int):
    """One session as a file to open in any calendar app."""
    session = db.get_or_404(LectureSession, session_id)
    page_url = url_for("sessions.detail", session_id=session.id, _external=True)
    body = session_calendar(session, method="PUBLISH", page_url=page_url)
    return _calendar_response(
        body,
        etag=etag_for(body),
        last_modified=session.updated_at,
        cache=PRIVATE_CACHE,
        filename=f"{session.series.title}.ics",
        attachment=True,
    )


def feed_links(token: FeedToken) -> dict[str, str]:
    https = url_for("feeds.private_feed", token=link_token(token), _external=True)
    webcal = "webcal://" + https.split("://", 1)[1]
    google = "https://calendar.google.com/calendar/render?" + urlencode({"cid": webcal})
    return {"https": https, "webcal": webcal, "google": google, "qr": qr_svg(webcal)}


@bp.get("/account/calendar/next.ics")
def download_upcoming():
    """My sessions still to come as a file to import once (no updates afterwards)."""
    body = upcoming_calendar(f"user:{current_user.id}", now=utcnow())
    db.session.commit()  # the event fragments it rendered are kept for the feeds
    response = Response(body, mimetype="text/calendar")
    response.headers["Content-Disposition"] = "attachment; filename=yunketang-next.ics"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/account/calendar")
def subscribe():
    """Subscribe to one's schedule: links, QR code, instructions, last refresh."""
    now = utcnow()
    fetch_counter.flush()  # show this process's latest counts
    feeds = []
    for kind, target_id in allowed_feeds(current_user):
        token = active_token(current_user, kind, target_id)
        unit = db.session.get(Unit, target_id) if kind == FeedKind.UNIT else None
        series = db.session.get(Series, target_id) if kind == FeedKind.SERIES else None
        links = feed_links(token) if token is not None else {}
        feeds.append(
            {
                "token": token,
                "kind": kind,
                "target_id": target_id,
                "unit": unit,
                "series": series,
                **links,
            }
        )
    db.session.commit()  # the fetch counts just flushed
    return render_template("feeds/subscribe.html", feeds=feeds, now=now, action_form=ActionForm())


@bp.post("/account/calendar/new/<kind>")
@bp.post("/account/calendar/new/<kind>/<int:target_id>")
def create(kind: str, target_id: int | None = None):
    if ActionForm().validate_on_submit():
        token_for(current_user, FeedKind(kind), target_id, now=utcnow())
        db.session.commit()
    return redirect(url_for("feeds.subscribe"))


def _own_token(token_id: int) -> FeedToken:
    token = db.get_or_404(FeedToken, token_id)
    if token.user_id != current_user.id or token.revoked_at is not None:
        abort(404)
    return token


@bp.post("/account/calendar/<int:token_id>/rotate")
def rotate(token_id: int):
    token = _own_token(token_id)
    if ActionForm().validate_on_submit():
        rotate_token(token, now=utcnow())
        db.session.commit()
        flash(_("New link made. Subscribe again with it; the old link no longer works."), "info")
    return redirect(url_for("feeds.subscribe"))


@bp.post("/account/calendar/<int:token_id>/revoke")
def revoke(token_id: int):
    token = _own_token(token_id)
    if ActionForm().validate_on_submit():
        revoke_token(token, now=utcnow())
        db.session.commit()
        flash(_("The link no longer works."), "info")
    return redirect(url_for("feeds.subscribe"))
