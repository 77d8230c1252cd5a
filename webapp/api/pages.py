"""The page where organizers and admins make, see and revoke their personal API tokens."""

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import RadioField, SelectField
from wtforms.validators import DataRequired, Length

from webapp.api.tokens import ApiToken, Scope, create_token, revoke_token, tokens_of
from webapp.db import db, utcnow
from webapp.forms import ActionForm, LineField, as_choices
from webapp.work import unit_of_work

bp = Blueprint("tokens", __name__, url_prefix="/account/api-tokens")


class TokenForm(FlaskForm):
    name = LineField(
        _l("Name (what will use it)"),
        validators=[DataRequired(message=_l("Please enter a name.")), Length(max=100)],
    )
    scope = RadioField(
        _l("It may"),
        choices=as_choices(
            [
                (Scope.READ.value, _l("read only")),
                (Scope.WRITE.value, _l("read and change (series, sessions, enrollments…)")),
            ]
        ),
        default=Scope.READ.value,
    )
    days = SelectField(
        _l("Valid for"),
        coerce=int,
        choices=as_choices(
            [(30, _l("30 days")), (90, _l("90 days")), (180, _l("180 days")), (365, _l("a year"))]
        ),
        default=90,
    )


@bp.route("", methods=["GET", "POST"])
def index():
    """The caller's tokens (newest first) and a form for a new one; a new token's secret is
    shown on this page once, never again."""
    form = TokenForm()
    secret = None
    if form.validate_on_submit():
        with unit_of_work(form) as work:
            token, secret = create_token(
                current_user,
                name=form.name.data,
                scope=Scope(form.scope.data),
                days=form.days.data,
                now=utcnow(),
            )
        if work.done:
            form = TokenForm(formdata=None)
    return render_template(
        "api/tokens.html",
        form=form,
        secret=secret,
        tokens=tokens_of(current_user),
        now=utcnow(),
        action_form=ActionForm(),
    ), (400 if form.errors else 200)


@bp.post("/<int:token_id>/revoke")
def revoke(token_id: int):
    token = db.get_or_404(ApiToken, token_id)
    if token.user_id != current_user.id:
        abort(404)
    if ActionForm().validate_on_submit():
        with unit_of_work() as work:
            revoke_token(token, now=utcnow())
        if work.done:
            flash(_("The token “%(name)s” no longer works.", name=token.name), "info")
    return redirect(url_for("tokens.index"))
