"""The app as gunicorn serves it in the feed benchmark, plus one extra route that serves the
same feed bytes with Flask's send_file (the baseline). Not part of the product.

    BENCH_FEED_FILE=/tmp/feed.ics gunicorn 'bench.feed_app:app' …"""

import os

from flask import send_file

from webapp import create_app
from webapp.permissions import ANYONE, ROUTES

app = create_app()
ROUTES["static_feed"] = ANYONE  # the baseline passes the same before-request checks
FEED_FILE = os.environ["BENCH_FEED_FILE"]


@app.get("/_bench/static.ics")
def static_feed():
    return send_file(FEED_FILE, mimetype="text/calendar", etag=True, conditional=True, max_age=300)
