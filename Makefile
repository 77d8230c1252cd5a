# Yunketang: `make demo` runs the product with demo data, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export FLASK_APP := webapp
# The suite runs twice: on SQLite, then on this PostgreSQL server (a fresh database is
# created on it for the run and dropped afterwards).
TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/postgres
# `make demo PORT=5001` runs the web app on another port (the worker needs none).
PORT ?= 5000

.PHONY: demo test lint install install-test translations translations-update clean

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Yunketang needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(BIN)/.installed-test: $(BIN)/.installed pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed translations

install-test: $(BIN)/.installed-test translations

translations: $(BIN)/.installed
	$(BIN)/pybabel -q compile -d webapp/translations

# After changing user-visible strings: extract them and merge into the catalogs.
translations-update: $(BIN)/.installed
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext --ignore-dirs '.* __pycache__' \
		--no-location --sort-output -o webapp/translations/messages.pot .
	$(BIN)/pybabel update -i webapp/translations/messages.pot -d webapp/translations --no-fuzzy-matching

# The demo sends every channel to the local sink (see /admin/mail): WeCom first (the
# township office's staff are on the township's WeCom), then SMS, then email.
# With nginx, its RTMP module and ffmpeg installed (Debian: nginx libnginx-mod-rtmp ffmpeg),
# it also runs nginx-rtmp and puts a test pattern on the air as a live class; the app is
# then opened through nginx on port 8080, where the live video is served.
STREAMING_TOOLS := $(shell test -x /usr/sbin/nginx && test -f /usr/lib/nginx/modules/ngx_rtmp_module.so && command -v ffmpeg >/dev/null && echo yes)
demo: export YUNKETANG_SMS_PROVIDER ?= sink
demo: export YUNKETANG_WECOM_CORP_ID ?= sink
demo: export YUNKETANG_CHANNEL_ORDER ?= wecom,sms,email
demo: export DEMO_PORT := $(PORT)
ifeq ($(STREAMING_TOOLS),yes)
demo: export YUNKETANG_RTMP_INGEST_URL ?= rtmp://127.0.0.1:1935/live
demo: export YUNKETANG_BASE_URL ?= http://127.0.0.1:8080
else
demo: export YUNKETANG_BASE_URL ?= http://127.0.0.1:$(PORT)
endif
demo: install
	$(BIN)/flask db upgrade
	$(BIN)/flask demo load
ifeq ($(STREAMING_TOOLS),yes)
	$(BIN)/flask streaming nginx-config --app http://127.0.0.1:$(PORT) --http 127.0.0.1:8080 \
		--rtmp 127.0.0.1:1935 --user "$$(id -un)" -o instance/streaming/nginx.conf
	@echo "Starting the web app, the worker, nginx-rtmp and a demo broadcast; open"
	@echo "http://127.0.0.1:8080 (the live class plays there). Ctrl-C stops them all."
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho -f Procfile.streaming start
else
	@echo "Streaming is off: nginx with the RTMP module and ffmpeg are not installed"
	@echo "(Debian: apt-get install nginx libnginx-mod-rtmp ffmpeg); the demo runs without a live class."
	@echo "Starting the web app on http://127.0.0.1:$(PORT) and the worker; Ctrl-C stops both."
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho -f Procfile start
endif

test: install-test
	$(BIN)/pytest -n 2
	TEST_DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/pytest -n 2

lint: $(BIN)/.installed-test
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
