"""Yunketang web application: create_app() is the one entry point."""

from flask import Flask, has_request_context, request
from flask_login import current_user
from flask_migrate import Migrate
from flask_wtf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

import webapp.admin.audit_listeners  # noqa: F401  (the audit log hears domain events)
import webapp.admin.channels  # noqa: F401  (its routes are on the admin blueprint)
import webapp.admin.hooks  # noqa: F401  (likewise)
import webapp.admin.log  # noqa: F401  (likewise)
import webapp.admin.operations  # noqa: F401  (its routes are on the admin blueprint)
import webapp.admin.tree  # noqa: F401  (likewise)
import webapp.auth.codes  # noqa: F401  (its routes are on the auth blueprint)
import webapp.feeds.listeners  # noqa: F401  (domain events: feeds and reminders listen)
import webapp.hooks.listeners  # noqa: F401  (outgoing webhooks)
import webapp.models  # noqa: F401  (every table registered before the mapper configures)
import webapp.pages.logins  # noqa: F401  (its routes are on the series blueprint)
import webapp.reminders.listeners  # noqa: F401
import webapp.series.listeners  # noqa: F401  (a merged unit's quotas move over)
import webapp.sessions.listeners  # noqa: F401  (a change notice sent marks its changes)
from webapp import config as config_module
from webapp import i18n
from webapp.admin.views import bp as admin_bp
from webapp.api import init_api
from webapp.api.pages import bp as tokens_bp
from webapp.attendance.views import bp as attendance_bp
from webapp.auth.access import login_manager
from webapp.auth.forms import LogoutForm
from webapp.auth.views import bp as auth_bp
from webapp.backups import backup_cli
from webapp.bounds import MAX_ID
from webapp.db import db, utcnow
from webapp.demo.cli import demo_cli
from webapp.errors import register_error_handlers
from webapp.feeds.views import bp as feeds_bp
from webapp.home.language import bp as i18n_bp
from webapp.home.views import bp as home_bp
from webapp.i18n.forms import LanguageForm
from webapp.icons import icon
from webapp.pages.series import bp as series_bp
from webapp.pages.sessions import bp as sessions_bp
from webapp.pages.speakers import bp as people_bp
from webapp.people.cli import users_cli
from webapp.permissions import check_route
from webapp.reminders.cli import reminders_cli
from webapp.reminders.reach import REASONS, reach_sentence
from webapp.reminders.views import bp as reminders_bp
from webapp.streaming import views as streaming_views
from webapp.streaming.cli import streaming_cli


class BoundedIntegerConverter(IntegerConverter):
    def __init__(self, url_map, fixed_digits=0, min=None, max=MAX_ID, signed=False):  # noqa: A002
        super().__init__(url_map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


csrf = CSRFProtect()
migrate = Migrate()

MIGRATIONS_DIR = config_module.PROJECT_ROOT / "webapp" / "migrations"


def create_app(config: dict | None = None) -> Flask:
    """Build the app: load settings, bind extensions, register blueprints and commands."""
    app = Flask(
        __name__,
        instance_path=str(config_module.resolve_instance_path()),
        instance_relative_config=True,
        # templates/ and static/ live in the package, so an installed wheel has them.
    )
    config_module.load_config(app, config)
    # Ids beyond the database's integer range do not match a route: 404, not a 500.
    app.url_map.converters["int"] = BoundedIntegerConverter

    if app.config["TRUSTED_PROXIES"]:
        hops = int(app.config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops
        )

    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR))
    # Who may use the route is checked first; then the CSRF token of a POST.
    app.before_request(check_route)
    csrf.init_app(app)
    login_manager.init_app(app)
    init_api(app, csrf)
    i18n.init_app(app)

    _register_blueprints(app)
    _register_commands(app)
    _register_template_context(app)

    register_error_handlers(app)
    app.after_request(_security_headers)
    return app


def _register_blueprints(app: Flask) -> None:
    for blueprint in (
        auth_bp,
        home_bp,
        i18n_bp,
        series_bp,
        sessions_bp,
        people_bp,
        reminders_bp,
        feeds_bp,
        admin_bp,
        streaming_views.bp,
        attendance_bp,
        tokens_bp,
    ):
        app.register_blueprint(blueprint)
    for name in streaming_views.CSRF_EXEMPT:
        csrf.exempt(f"{streaming_views.__name__}.{name}")


def _register_commands(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(backup_cli)
    app.cli.add_command(demo_cli)
    app.cli.add_command(reminders_cli)
    app.cli.add_command(streaming_cli)


def _register_template_context(app: Flask) -> None:
    app.jinja_env.globals["icon"] = icon

    @app.context_processor
    def shared_forms():
        if not has_request_context():
            return {}  # emails rendered by the worker have no page chrome
        language_form = LanguageForm(formdata=None, locale=i18n.current_language())
        language_form.next.data = request.full_path.rstrip("?") if request else "/"
        return {
            "language_form": language_form,
            "logout_form": LogoutForm(formdata=None),
            "reach_sentence": lambda reach: reach_sentence(reach, now=utcnow()),
            "reach_reasons": REASONS,
        }


COOKIELESS_ENDPOINTS = frozenset(
    {"static", "streaming.rtmp_callback", "streaming.heartbeat", "home.health"}
)


def _security_headers(response):
    # Pages for a logged-in user carry personal data: no shared or disk cache keeps them.
    # (Feeds and downloads set their own policy; static files carry none.)
    # (Machine-facing endpoints that know no cookie do not load the user for this.)
    if (
        request.endpoint not in COOKIELESS_ENDPOINTS
        and "Cache-Control" not in response.headers
        and current_user.is_authenticated
    ):
        response.headers["Cache-Control"] = "no-store"
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "media-src 'self' blob:; "
        "frame-ancestors 'none'; form-action 'self'",
    )
    return response
