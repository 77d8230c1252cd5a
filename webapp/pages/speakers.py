"""The speaker directory (organizers) and the unit liaisons (admins)."""

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from webapp.db import db
from webapp.errors import (
    InvalidInput,
)
from webapp.people.forms import SpeakerForm
from webapp.people.models import Speaker
from webapp.people.services import (
    find_user_by_identifier,
)
from webapp.people.speakers import (
    create_speaker,
    list_speakers,
    update_speaker,
)
from webapp.urls import safe_next_url
from webapp.work import unit_of_work

bp = Blueprint("people", __name__)


def _linked_user(form: SpeakerForm):
    identifier = (form.user_identifier.data or "").strip()
    if not identifier:
        return None
    user = find_user_by_identifier(identifier)
    if user is None:
        raise InvalidInput(
            _("No account has this email or mobile number."), field="user_identifier"
        )
    return user


@bp.get("/speakers")
def speakers():
    return render_template("people/speakers.html", speakers=list_speakers())


@bp.route("/speakers/new", methods=["GET", "POST"])
def new_speaker():
    form = SpeakerForm()
    if form.validate_on_submit():
        with unit_of_work(form) as work:
            create_speaker(
                form.name.data,
                title=form.title.data or None,
                affiliation=form.affiliation.data or None,
                bio=form.bio.data or None,
                user=_linked_user(form),
            )
        if work.done:
            flash(_("Speaker added."), "info")
            return redirect(safe_next_url(request.args.get("back")) or url_for("people.speakers"))
    return render_template("people/speaker_form.html", form=form, speaker=None)


@bp.route("/speakers/<int:speaker_id>/edit", methods=["GET", "POST"])
def edit_speaker(speaker_id: int):
    speaker = db.get_or_404(Speaker, speaker_id)
    form = SpeakerForm(obj=speaker)
    if request.method == "GET" and speaker.user is not None:
        form.user_identifier.data = speaker.user.email or speaker.user.phone
    if form.validate_on_submit():
        with unit_of_work(form) as work:
            update_speaker(
                speaker,
                name=form.name.data,
                title=form.title.data or None,
                affiliation=form.affiliation.data or None,
                bio=form.bio.data or None,
                user=_linked_user(form),
            )
        if work.done:
            flash(_("Saved."), "info")
            return redirect(url_for("people.speakers"))
    return render_template("people/speaker_form.html", form=form, speaker=speaker)
