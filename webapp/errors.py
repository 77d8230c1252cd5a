"""Domain errors and how the web layer shows them."""

from flask import Flask, current_app, jsonify, render_template, request
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException


class DomainError(Exception):
    """A rule of the product was broken; the message is already in the user's language."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(DomainError):
    """Input that has the right shape but breaks a rule (bad email, short password...)."""


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409


class PermissionDenied(DomainError):
    status_code = 403


class NeedsConfirmation(DomainError):
    """Warnings the organizer may accept (participants with overlapping series)."""

    status_code = 409

    def __init__(self, warnings: list[str]):
        super().__init__(" ".join(warnings))
        self.warnings = warnings


def wants_json() -> bool:
    """Tell whether the client asked for JSON rather than a page."""
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return (
        best == "application/json"
        and request.accept_mimetypes[best] > (request.accept_mimetypes["text/html"])
    )


def _error_titles() -> dict[int, str]:
    return {
        400: _("The request could not be understood."),
        401: _("Please log in to continue."),
        403: _("You do not have permission to open this page."),
        404: _("This page does not exist."),
        405: _("This action is not allowed here."),
        409: _("This conflicts with existing data."),
        413: _(
            "The upload is too large: at most %(size)d MB.",
            size=current_app.config["MAX_CONTENT_LENGTH"] // (1024 * 1024),
        ),
        500: _("Something went wrong on our side. Please try again later."),
    }


def register_error_handlers(app: Flask) -> None:
    def render_error(code: int, message: str | None = None):
        message = message or _error_titles().get(code, _error_titles()[500])
        if wants_json():
            return jsonify(error=message, status=code), code
        return render_template("errors/error.html", code=code, message=message), code

    @app.errorhandler(HTTPException)
    def handle_http_exception(error: HTTPException):
        if error.code is None or error.code < 400:
            return error
        return render_error(error.code)

    @app.errorhandler(DomainError)
    def handle_domain_error(error: DomainError):
        return render_error(error.status_code, error.message)

    @app.errorhandler(500)
    def handle_server_error(error):
        return render_error(500)
