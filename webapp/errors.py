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


# The API's error codes: stable words for programs (the message is for people).
API_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    412: "precondition_failed",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    428: "precondition_required",
    429: "too_many_requests",
    500: "server_error",
}


def api_error(code: int, message: str, *, field: str | None = None, details=None):
    """The one error object of /api/v1, with a message in the caller's language."""
    body = {"code": API_CODES.get(code, "error"), "message": message}
    if field:
        body["field"] = field
    if details:
        body["details"] = details
    response = jsonify(error=body)
    response.status_code = code
    if code == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="yunketang"'
    return response


def _invalid_fields(error: HTTPException):
    """A request body or query the schemas refused (webargs answers 422 with messages)."""
    messages = getattr(error, "data", {}).get("messages", {})
    details = {}
    for fields in messages.values():  # by location: json, query
        if isinstance(fields, dict):
            for name, problems in fields.items():
                details[str(name)] = [translate_problem(str(p)) for p in _flat(problems)]
    names = "、".join(details) if details else ""
    return _("Some fields are not valid: %(names)s.", names=names), details


def _flat(problems) -> list:
    if isinstance(problems, dict):
        return [p for value in problems.values() for p in _flat(value)]
    if isinstance(problems, list):
        return [p for value in problems for p in _flat(value)]
    return [problems]


def translate_problem(text: str) -> str:
    """marshmallow's most common messages, in the caller's language."""
    known = {
        "Missing data for required field.": _("This field is required."),
        "Unknown field.": _("There is no such field."),
        "Field may not be null.": _("This field cannot be empty (null)."),
        "Not a valid integer.": _("Not a whole number."),
        "Not a valid string.": _("Not text."),
        "Not a valid boolean.": _("Not true or false."),
        "Not a valid datetime.": _(
            "Not a date and time (RFC 3339, e.g. 2026-12-03T16:00:00+08:00)."
        ),
        "Not a valid aware datetime.": _("Give the time with its offset (e.g. +08:00)."),
        "Not a valid list.": _("Not a list."),
        "Invalid input type.": _("Not an object."),
        "Invalid input.": _("Not valid."),
    }
    if text in known:
        return known[text]
    if text.startswith(("Must be one of:", "Must be greater", "Must be less", "Length must",
                        "Longer than", "Shorter than")):  # fmt: skip
        return _("Out of the allowed values or lengths (%(rule)s).", rule=text)
    return text


def _api_titles() -> dict[int, str]:
    return {
        401: _("Send a valid API token: Authorization: Bearer <token>."),
        403: _("This token may not do this (its scope, or the role of its owner)."),
        404: _("There is no such object, or it is not yours to see."),
        405: _("This method is not allowed here."),
    }


def register_error_handlers(app: Flask) -> None:
    def render_error(code: int, message: str | None = None, *, field=None, details=None):
        if request.path.startswith("/api/"):
            message = message or _api_titles().get(code) or _error_titles().get(code)
            return api_error(code, message or _error_titles()[500], field=field, details=details)
        message = message or _error_titles().get(code, _error_titles()[500])
        if wants_json():
            return jsonify(error=message, status=code), code
        return render_template("errors/error.html", code=code, message=message), code

    @app.errorhandler(HTTPException)
    def handle_http_exception(error: HTTPException):
        if error.code is None or error.code < 400:
            return error
        if error.code == 422 and request.path.startswith("/api/"):
            message, details = _invalid_fields(error)
            return render_error(422, message, details=details)
        return render_error(error.code)

    @app.errorhandler(DomainError)
    def handle_domain_error(error: DomainError):
        details = {"warnings": error.warnings} if isinstance(error, NeedsConfirmation) else None
        return render_error(error.status_code, error.message, field=error.field, details=details)

    @app.errorhandler(500)
    def handle_server_error(error):
        return render_error(500)
