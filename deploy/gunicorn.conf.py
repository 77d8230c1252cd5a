"""gunicorn settings for production: `gunicorn -c deploy/gunicorn.conf.py`.

The scheduler never runs here (each forked worker would run its own copy); run
`python -m scheduler` as its own service (deploy/systemd/yunketang-worker@.service, one
instance per worker). Logs go to stdout and so to the journal (`journalctl -u yunketang-web`),
which rotates them (deploy/journald/yunketang.conf)."""

import multiprocessing
import os

wsgi_app = "webapp:create_app()"
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", 2))
timeout = 30
graceful_timeout = 30
accesslog = "-"
forwarded_allow_ips = "127.0.0.1"
