"""Organizers hand out fresh one-time log-in links at any time: to one participant (sent
through their channel, or shown with a QR code to scan), to a unit, or to everyone in the
series who has never signed in; sent through each person's channel or downloaded as a
sheet. A new link ends the person's older ones."""

from io import BytesIO

from flask import abort, flash, redirect, render_template, send_file, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from webapp.db import db, utcnow
from webapp.forms import ActionForm
from webapp.pages.series import XLSX, _batch, bp, links_form
from webapp.people.logins import issue_login_token
from webapp.people.models import Unit, User
from webapp.qr import qr_svg
from webapp.reminders.direct import queue_login_links
from webapp.series import importing, sheets
from webapp.series.enrollment import enrolled_participants
from webapp.series.forms import LoginLinksForm
from webapp.series.models import Enrollment, Series


def links_sheet_response(links: list[tuple[User, str]], name: str):
    rows = [
        (
            user.display_name,
            user.unit.name if user.unit else "",
            user.job_title or "",
            sheets.national_mobile(user.phone),
            user.email or "",
            url_for("auth.login_link", token=token, _external=True),
        )
        for user, token in links
    ]
    return send_file(
        BytesIO(sheets.links_workbook(rows)),
        mimetype=XLSX,
        as_attachment=True,
        download_name=name,
    )


@bp.post("/<int:series_id>/import/<int:batch_id>/links.xlsx")
def import_links(series_id: int, batch_id: int):
    series = db.get_or_404(Series, series_id)
    batch = _batch(series, batch_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    links = importing.login_links_for_batch(batch, now=utcnow())
    db.session.commit()
    return links_sheet_response(links, f"登录链接-{series.id}-{batch.id}.xlsx")


def _chosen(series: Series, form: LoginLinksForm) -> list[User]:
    if form.scope.data == "unit":
        unit = db.session.get(Unit, form.unit_id.data or -1)
        return enrolled_participants(series, unit=unit) if unit is not None else []
    return enrolled_participants(series, never_signed_in=form.scope.data == "never")


@bp.post("/<int:series_id>/login-links")
def login_links(series_id: int):
    series = db.get_or_404(Series, series_id)
    form = links_form(series)
    if not form.validate_on_submit():
        flash(_("Please choose who gets a link."), "error")
        return redirect(url_for("series.participants", series_id=series.id))
    users = _chosen(series, form)
    if not users:
        flash(_("Nobody matches: no link was made."), "info")
        return redirect(url_for("series.participants", series_id=series.id))
    now = utcnow()
    if form.how.data == "sheet":
        links = [(user, issue_login_token(user, now=now)) for user in users]
        db.session.commit()
        return links_sheet_response(links, f"登录链接-{series.id}.xlsx")
    queued, unreachable = queue_login_links(users, now=now, series_id=series.id)
    db.session.commit()
    message = ngettext(
        "A new log-in link is on its way to %(num)d person; their older links stop working.",
        "New log-in links are on their way to %(num)d people; their older links stop working.",
        len(queued),
    )
    if unreachable:
        message += " " + _(
            "%(count)d cannot be reached (%(names)s): download the sheet for them.",
            count=len(unreachable),
            names="、".join(user.display_name for user in unreachable[:10])
            + ("…" if len(unreachable) > 10 else ""),
        )
    flash(message, "info" if not unreachable else "error")
    return redirect(url_for("series.participants", series_id=series.id))


@bp.post("/<int:series_id>/participants/<int:enrollment_id>/login-link/<how>")
def participant_login_link(series_id: int, enrollment_id: int, how: str):
    """One person's new link: sent through their channel, or shown here with a QR code for
    them to scan (at the training room's desk, say)."""
    series = db.get_or_404(Series, series_id)
    enrollment = db.get_or_404(Enrollment, enrollment_id)
    if enrollment.series_id != series.id or how not in ("send", "show"):
        abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    return hand_out_link(
        enrollment.user,
        how,
        series_id=series.id,
        back_url=url_for("series.participants", series_id=series.id),
    )


def hand_out_link(user: User, how: str, *, series_id: int | None, back_url: str):
    """A person's new log-in link, shown once with its QR code ("show"), or queued to go
    through their first channel ("send"), with a message that says which happened."""
    now = utcnow()
    if how == "show":
        link = url_for("auth.login_link", token=issue_login_token(user, now=now), _external=True)
        db.session.commit()
        return render_template(
            "login_link.html", user=user, link=link, qr=qr_svg(link), back_url=back_url
        )
    queued, _unreachable = queue_login_links([user], now=now, series_id=series_id)
    db.session.commit()
    if queued:
        flash(_("A new log-in link is on its way to %(name)s.", name=user.display_name), "info")
    else:
        flash(
            _(
                "%(name)s cannot be reached by any channel: show the link with its QR code "
                "instead.",
                name=user.display_name,
            ),
            "error",
        )
    return redirect(back_url)
