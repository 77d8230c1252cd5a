"""The app as gunicorn serves it in the heartbeat benchmark, plus one bare route that
inserts one attendance row per request and nothing else (the baseline). Not part of the
product.

    gunicorn 'bench.heartbeat_app:app' …"""

from flask import request
from sqlalchemy import insert

from webapp import create_app
from webapp.db import db, utcnow
from webapp.permissions import ANYONE, ROUTES
from webapp.sessions.models import AttendanceEvent, AttendanceKind, AttendanceSource

app = create_app()
ROUTES["bare_insert"] = ANYONE  # the baseline passes the same before-request checks
app.extensions["csrf"].exempt("bench.heartbeat_app.bare_insert")


@app.post("/_bench/insert")
def bare_insert():
    body = request.get_json()
    db.session.execute(
        insert(AttendanceEvent),
        [
            dict(
                session_id=body["session_id"],
                user_id=body["user_id"],
                source=AttendanceSource.PLAYER,
                kind=AttendanceKind.HEARTBEAT,
                at=utcnow(),
            )
        ],
    )
    db.session.commit()
    return "", 204
