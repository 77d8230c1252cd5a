"""Settings: defaults, then instance/config.py, then YUNKETANG_* environment variables,
then the mapping given to create_app (tests). Secrets come only from the environment or
the instance folder."""

import os
import secrets
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Flask

ENV_PREFIX = "YUNKETANG"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
SECRET_KEY_FILE = "secret_key"  # noqa: S105 (a file name, not a secret)

# Keys that appear in tutorials and sample configs; a server started with one of them
# would let anyone forge session cookies.
KNOWN_DEV_SECRET_KEYS = frozenset(
    {"", "dev", "development", "secret", "changeme", "change-me", "test", "yunketang"}
)


class Defaults:
    DATABASE_URL: str | None = None  # None: SQLite file in the instance folder
    BASE_URL = "http://127.0.0.1:5000"
    MAIL_URL: str | None = None  # None: write mail to files under instance/mail
    DEFAULT_TIMEZONE = "Asia/Shanghai"
    DEFAULT_LOCALE = "zh_CN"
    LANGUAGES = ("zh_CN", "en")
    TRUSTED_PROXIES = 0  # how many reverse proxies in front of the app set X-Forwarded-*
    PASSWORD_HASH_PROFILE = "RFC_9106_LOW_MEMORY"  # noqa: S105 (an argon2.profiles name)

    MAIL_FROM = "云课堂 Yunketang <noreply@localhost>"
    MAIL_TIMEOUT = 10  # seconds, for every SMTP operation
    MAIL_CA_FILE: str | None = None  # extra CA bundle for the SMTP server's certificate
    WEBHOOK_TIMEOUT = 5  # seconds
    WEBHOOK_RATE_PER_MINUTE = 20  # the group robots' own limit
    # Robots and webhooks: https only, never to a private address, unless an admin allows
    # http or lists a host (comma-separated) whose address is not checked.
    OUTGOING_ALLOW_HTTP = False
    OUTGOING_ALLOWED_HOSTS: str | list[str] = ""
    # Personal channels, tried in this order for each participant (comma-separated; a
    # channel that is not configured is left out): wecom, dingtalk, sms, email.
    CHANNEL_ORDER = "wecom,dingtalk,sms,email"
    # The JSON API and its OpenAPI document (flask-smorest): /api/v1/openapi.json.
    API_TITLE = "Yunketang API"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.1.0"
    OPENAPI_URL_PREFIX = "/api/v1"
    OPENAPI_JSON_PATH = "openapi.json"
    API_SPEC_OPTIONS = {
        "security": [{"token": []}],
        "info": {
            "description": "Series, sessions, lectures, speakers, units, participants and "
            "enrollments (read and write) and attendance (read) of a Yunketang site. "
            "Authenticate with `Authorization: Bearer <personal API token>` (made on the "
            "site's API tokens page). Lists are paged with `limit` and `cursor`; GETs carry "
            'an ETag. Errors are `{"error": {"code", "message"}}`, the message in '
            "the language of Accept-Language."
        },
    }
    # Defaults an admin can change at run time on /admin/settings (webapp/settings.py): the
    # reminders a new series starts with (minutes before) and its attendance thresholds.
    DEFAULT_REMINDER_MINUTES = "1440,15"
    DEFAULT_ATTENDANCE_SHARE = 80
    DEFAULT_ATTENDANCE_LATE_MINUTES = 10
    DEFAULT_ATTENDANCE_GAP_MINUTES = 2
    # SMS: "" (off), "sink" (written to instance/mail), "aliyun", "tencent" or "gateway".
    SMS_PROVIDER = ""
    SMS_SIGN_NAME = "云课堂"  # the approved signature (签名)
    SMS_TIMEOUT = 5  # seconds
    SMS_PER_NUMBER_PER_DAY = 10  # messages to one number in one day (sign-in codes too)
    SMS_PER_DAY = 10000  # all messages in one day; beyond it, the next channel is used
    SMS_PER_SECOND = 100  # all workers together
    # Every provider's address is a setting: an operator can point it at a gateway or a
    # test server. The secrets come from the environment or instance/config.py only.
    ALIYUN_SMS_ENDPOINT = "https://dysmsapi.aliyuncs.com"
    ALIYUN_SMS_REGION = "cn-hangzhou"
    ALIYUN_ACCESS_KEY_ID = ""
    ALIYUN_ACCESS_KEY_SECRET = ""
    TENCENT_SMS_ENDPOINT = "https://sms.tencentcloudapi.com"
    TENCENT_SMS_REGION = "ap-guangzhou"
    TENCENT_SMS_SDK_APP_ID = ""
    TENCENT_SECRET_ID = ""
    TENCENT_SECRET_KEY = ""
    SMS_GATEWAY_URL = ""  # a generic HTTP gateway: signed JSON POST (see README)
    SMS_GATEWAY_SECRET = ""
    # WeCom (企业微信) application messages: "sink", or the corp id, agent id and secret.
    WECOM_ENDPOINT = "https://qyapi.weixin.qq.com"
    WECOM_CORP_ID = ""
    WECOM_AGENT_ID = ""
    WECOM_SECRET = ""
    # DingTalk (钉钉) work notifications (工作通知): "sink", or the app key, secret, agent id.
    DINGTALK_ENDPOINT = "https://oapi.dingtalk.com"
    DINGTALK_APP_KEY = ""
    DINGTALK_APP_SECRET = ""
    DINGTALK_AGENT_ID = ""
    PERSONAL_TIMEOUT = 5  # seconds, for WeCom and DingTalk calls
    # A session's room opens this many minutes before its start: a join press earlier does
    # not count and says when it opens.
    JOIN_OPENS_MINUTES = 30
    # Self-hosted streaming (nginx with the RTMP module beside the app; see
    # `flask streaming nginx-config`). Off while RTMP_INGEST_URL is empty.
    RTMP_INGEST_URL = ""  # what OBS is given, e.g. rtmp://live.example.org/live
    HLS_URL = "/hls/"  # where nginx serves the playlists, on the app's own origin
    # The callbacks' shared secret, in the callback URLs `flask streaming nginx-config`
    # writes; "" derives one from SECRET_KEY.
    RTMP_CALLBACK_SECRET = ""
    STREAMING_FOLDER: str | None = None  # None: instance/streaming (hls/, recordings/)
    # A publish key works from this long before the start to this long after the end.
    STREAM_KEY_OPENS_MINUTES = 30
    STREAM_KEY_CLOSES_MINUTES = 30
    # A publisher gone this long has ended the broadcast; back sooner, it is the same one.
    STREAM_RECONNECT_GRACE_SECONDS = 60
    # nginx calls on_update this often (notify_update_timeout); three missed: gone.
    STREAM_UPDATE_SECONDS = 30
    # The player says it is watching this often; a viewer counts as "now" this long after.
    HEARTBEAT_SECONDS = 30
    VIEWER_FRESH_SECONDS = 75
    # Serve recordings by X-Accel-Redirect to this internal nginx location ("" : the app
    # sends the file itself).
    RECORDINGS_ACCEL_PREFIX = ""
    FFMPEG = "ffmpeg"
    # A session's attendance is final this long after it ends (the organizers are told).
    ATTENDANCE_FINALISE_MINUTES = 30
    REMINDER_PLANNING_HORIZON = 600  # seconds: reminder rows are written this far ahead
    NOTICE_COALESCE_SECONDS = 120  # changes to one session within this window: one message
    DISPATCH_BATCH_SIZE = 50  # rows one claim takes
    # A claim lives this long unless its worker's heartbeat renews it (every 2 seconds):
    # a dead worker's rows are taken over within this time.
    DISPATCH_LEASE_SECONDS = 10
    # A worker holds a series' fence (see reminders/fence.py) this long at most at a time,
    # plus one send: how long a move or a cancellation may wait for messages in flight.
    DISPATCH_FENCE_SECONDS = 0.2
    DISPATCH_MAX_ATTEMPTS = 5
    DISPATCH_RETRY_BASE_SECONDS = 30
    FEED_LOOKUP_CACHE_SECONDS = 1.0  # a web process remembers a feed lookup this long
    # On PostgreSQL, web processes hear when feeds or links change and then remember lookups
    # until then (webapp/feeds/invalidation.py); False: only the seconds above.
    FEED_VALIDATORS_BY_NOTIFY = True

    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    SESSION_COOKIE_NAME = "ykt_session"
    SESSION_COOKIE_SECURE: bool | None = None  # None: secure when BASE_URL is https
    REMEMBER_COOKIE_SECURE: bool | None = None
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_DURATION = 60 * 60 * 24 * 30
    PERMANENT_SESSION_LIFETIME = 60 * 60 * 24 * 14
    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session
    MAX_CONTENT_LENGTH = 20 * 1024 * 1024  # uploads (participant sheets) up to 20 MB
    MAX_IMPORT_ROWS = 5000  # participants per imported sheet
    BABEL_DEFAULT_LOCALE = "zh_CN"
    BABEL_DEFAULT_TIMEZONE = "UTC"
    LOCALE_COOKIE_NAME = "ykt_locale"


def resolve_instance_path() -> Path:
    """Return the instance folder: YUNKETANG_INSTANCE_PATH or instance/ in the project."""
    configured = os.environ.get(f"{ENV_PREFIX}_INSTANCE_PATH")
    return Path(configured).resolve() if configured else PROJECT_ROOT / "instance"


def load_config(app: Flask, overrides: dict | None) -> None:
    """Fill app.config in the documented order and derive the dependent settings."""
    app.config.from_object(Defaults)
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_prefixed_env(ENV_PREFIX)
    if overrides:
        app.config.update(overrides)

    instance = Path(app.instance_path)
    url = app.config["DATABASE_URL"] or f"sqlite:///{instance / 'yunketang.sqlite3'}"
    app.config["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(url)
    if not app.config["MAIL_URL"]:
        app.config["MAIL_URL"] = f"file://{instance / 'mail'}"
    app.config["BASE_URL"] = app.config["BASE_URL"].rstrip("/")
    is_https = app.config["BASE_URL"].startswith("https://")
    for key in ("SESSION_COOKIE_SECURE", "REMEMBER_COOKIE_SECURE"):
        if app.config[key] is None:
            app.config[key] = is_https
    app.config["BABEL_DEFAULT_LOCALE"] = app.config["DEFAULT_LOCALE"]

    try:
        ZoneInfo(app.config["DEFAULT_TIMEZONE"])
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise RuntimeError(
            f"{ENV_PREFIX}_DEFAULT_TIMEZONE={app.config['DEFAULT_TIMEZONE']!r} "
            "is not an IANA time zone"
        ) from error
    if app.config["DEFAULT_LOCALE"] not in app.config["LANGUAGES"]:
        raise RuntimeError(
            f"{ENV_PREFIX}_DEFAULT_LOCALE must be one of {', '.join(app.config['LANGUAGES'])}"
        )
    app.config["SECRET_KEY"] = resolve_secret_key(app)


def normalise_database_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs written the usual way."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def resolve_secret_key(app: Flask) -> str:
    """Return the configured key, or the one generated once into the instance folder.

    Outside debug and testing, refuse a key that is known from samples and tutorials.
    """
    key = app.config.get("SECRET_KEY")
    if not key:
        key_file = Path(app.instance_path) / SECRET_KEY_FILE
        if key_file.exists():
            key = key_file.read_text().strip()
        else:
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key = secrets.token_urlsafe(48)
            # Create with 0600 so other local users cannot read it.
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(key + "\n")
    if key in KNOWN_DEV_SECRET_KEYS and not (app.debug or app.testing or app.config["TESTING"]):
        raise RuntimeError(
            f"Refusing to start with a well-known secret key. Set {ENV_PREFIX}_SECRET_KEY to a "
            "long random value, or unset it to have one generated into the instance folder."
        )
    return key
