"""The admin's status page: workers, the outbox by channel (robots and webhooks too),
feeds waiting, the stream server's last callback, the database's size."""

from datetime import timedelta
from zoneinfo import ZoneInfo

from tests.helpers import log_in
from webapp.db import database_size, db, utcnow
from webapp.feeds.models import FeedDocument
from webapp.people.models import Role
from webapp.reminders.models import Channel, Delivery, DeliveryKind, DeliveryStatus
from webapp.streaming.broadcasts import last_heard_from_stream_server
from webapp.streaming.models import Broadcast


def test_the_status_page_shows_the_outbox_feeds_stream_server_and_database(
    app, client, make_user, make_series
):
    make_user(Role.ADMIN, email="admin@example.org")
    series = make_series()
    now = utcnow()
    for n, (channel, status) in enumerate(
        [
            (Channel.SMS, DeliveryStatus.PENDING),
            (Channel.SMS, DeliveryStatus.PENDING),
            (Channel.SMS, DeliveryStatus.CLAIMED),
            (Channel.WEBHOOK, DeliveryStatus.FAILED),
        ]
    ):
        db.session.add(
            Delivery(
                key=f"status-{n}",
                kind=DeliveryKind.REMINDER,
                channel=channel,
                series_id=series.id,
                due_at=now,
                status=status,
                last_error="HTTP 500" if status == DeliveryStatus.FAILED else None,
            )
        )
    for key in ("series:1", "user:1", "user:2"):
        db.session.add(
            FeedDocument(
                feed_key=key,
                body=b"",
                etag="x",
                last_modified=now,
                rendered_at=now,
                stale_since=now - timedelta(minutes=2),
            )
        )
    assert last_heard_from_stream_server() is None
    heard = now - timedelta(minutes=3)
    db.session.add(
        Broadcast(session_id=series.sessions[0].id, started_at=heard, last_seen_at=heard)
    )
    db.session.commit()
    assert last_heard_from_stream_server() == heard
    log_in(client, "admin@example.org")
    page = client.get("/admin/status").text
    system = page.split("<h2>系统</h2>")[1].split("</section>")[0]
    assert "<dd>3 · 最早的已等待" in system  # three feeds wait to be published
    local = heard.astimezone(ZoneInfo("Asia/Shanghai"))
    assert local.strftime("%H:%M") in system  # the stream server's last callback
    size = database_size()
    assert size and size > 0 and f"{size / 1048576:.1f} MB" in system
    table = page.split("<h2>消息</h2>")[1].split("</table>")[0]
    sms_row = table.split("短信</td>")[1].split("</tr>")[0]
    assert sms_row.startswith("<td>2</td><td>1</td>")  # waiting 2, being sent 1
    assert "群机器人和 Webhook" in table
