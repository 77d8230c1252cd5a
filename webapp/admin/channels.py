"""The admin's view of the personal channels: which are on and in what order, where each
provider is reached (never its secrets: those are set in the environment or the instance
folder and only said to be set), the approved SMS templates, and what SMS cost."""

from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from webapp.admin.forms import SmsTemplateForm
from webapp.admin.views import bp
from webapp.forms import as_choices
from webapp.reminders.models import Channel
from webapp.reminders.outbox import sms_costs
from webapp.reminders.reach import CHANNEL_NAMES, channel_configured, channel_order
from webapp.reminders.texts import SMS_KINDS, save_template, template_text, templates_by_kind
from webapp.work import unit_of_work

KIND_NAMES = {
    "reminder": _l("Reminder before a session"),
    "rescheduled": _l("A session moved"),
    "cancelled": _l("A session cancelled"),
    "changed": _l("Other changes (agenda, enrolment)"),
    "attendance": _l("Attendance final (to organizers)"),
    "login_code": _l("Sign-in code"),
    "login_link": _l("Sign-in link"),
}

# What each channel needs, by setting name; secrets are only said to be set or not.
SETTINGS = {
    Channel.SMS: {
        "aliyun": (
            ("ALIYUN_SMS_ENDPOINT", False),
            ("ALIYUN_ACCESS_KEY_ID", False),
            ("ALIYUN_ACCESS_KEY_SECRET", True),
        ),
        "tencent": (
            ("TENCENT_SMS_ENDPOINT", False),
            ("TENCENT_SMS_SDK_APP_ID", False),
            ("TENCENT_SECRET_ID", False),
            ("TENCENT_SECRET_KEY", True),
        ),
        "gateway": (("SMS_GATEWAY_URL", False), ("SMS_GATEWAY_SECRET", True)),
    },
    Channel.WECOM: (
        ("WECOM_ENDPOINT", False),
        ("WECOM_CORP_ID", False),
        ("WECOM_AGENT_ID", False),
        ("WECOM_SECRET", True),
    ),
    Channel.DINGTALK: (
        ("DINGTALK_ENDPOINT", False),
        ("DINGTALK_APP_KEY", False),
        ("DINGTALK_AGENT_ID", False),
        ("DINGTALK_APP_SECRET", True),
    ),
}


def _shown(name: str, secret: bool) -> str:
    value = str(current_app.config.get(name) or "")
    if secret:
        return _("set") if value else _("not set")
    if name.endswith(("ENDPOINT", "URL")) and value:
        parts = urlsplit(value)
        return f"{parts.scheme}://{parts.netloc}"  # never a token in a path or query
    return value or _("not set")


def _is_sink(channel: Channel, config) -> bool:
    if channel == Channel.WECOM:
        return config["WECOM_CORP_ID"] == "sink"
    return channel == Channel.DINGTALK and config["DINGTALK_APP_KEY"] == "sink"


def _channel_rows() -> list[dict]:
    config = current_app.config
    order = channel_order()
    rows = []
    for channel in (Channel.WECOM, Channel.DINGTALK, Channel.SMS, Channel.EMAIL):
        settings = SETTINGS.get(channel, ())
        mode = ""
        if channel == Channel.SMS:
            mode = config["SMS_PROVIDER"]
            settings = settings.get(mode, ())
        elif _is_sink(channel, config):
            mode, settings = "sink", ()
        elif channel == Channel.EMAIL:
            mode = urlsplit(config["MAIL_URL"]).scheme
            mode = "sink" if mode == "file" else mode
        rows.append(
            {
                "channel": channel,
                "name": CHANNEL_NAMES[channel],
                "configured": channel_configured(channel, config),
                "position": order.index(channel) + 1 if channel in order else None,
                "mode": mode,
                "settings": [(name, _shown(name, secret)) for name, secret in settings],
            }
        )
    return rows


def _template_form() -> SmsTemplateForm:
    form = SmsTemplateForm()
    form.kind.choices = as_choices((kind, KIND_NAMES[kind]) for kind in SMS_KINDS)
    form.language.choices = as_choices(
        (language, language) for language in current_app.config["LANGUAGES"]
    )
    return form


@bp.route("/channels", methods=["GET", "POST"])
def channels():
    form = _template_form()
    if form.validate_on_submit():
        with unit_of_work(form) as work:
            save_template(
                form.kind.data, form.language.data, form.code.data, form.max_param_length.data
            )
        if work.done:
            flash(_("Template saved."), "info")
            return redirect(url_for("admin.channels"))
    templates = templates_by_kind()
    return render_template(
        "admin/channels.html",
        rows=_channel_rows(),
        order=channel_order(),
        form=form,
        kinds=[
            (kind, KIND_NAMES[kind], SMS_KINDS[kind][0], template_text(kind)) for kind in SMS_KINDS
        ],
        templates=templates,
        languages=current_app.config["LANGUAGES"],
        costs=sms_costs(),
        sign_name=current_app.config["SMS_SIGN_NAME"],
        channel_names=CHANNEL_NAMES,
    ), (400 if form.errors else 200)
