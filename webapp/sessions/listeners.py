"""What sessions do when something happens elsewhere (webapp/events.py): a change notice
that went out marks the changes it told of as announced, so the session page can say what
time participants had before (原定). Runs in the transaction of the notice."""

from datetime import datetime

from sqlalchemy import update

from webapp import events
from webapp.db import db
from webapp.sessions.models import SessionChange


@events.change_notice_composed.connect
def _announced(_sender, *, session_id: int, sequence: int, at: datetime, **_facts) -> None:
    db.session.execute(
        update(SessionChange)
        .where(
            SessionChange.session_id == session_id,
            SessionChange.sequence <= sequence,
            SessionChange.announced_at.is_(None),
        )
        .values(announced_at=at)
        .execution_options(synchronize_session="fetch")
    )
