"""`flask streaming nginx-config`: write the nginx configuration for self-hosted streaming,
with this app's callback secret and folders (deploy/nginx/streaming.conf is an example)."""

import ipaddress
import shlex
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from webapp.streaming.broadcasts import streaming_folder
from webapp.streaming.keys import callback_secret

streaming_cli = AppGroup("streaming", help="Self-hosted streaming (nginx with the RTMP module).")

RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"  # Debian's libnginx-mod-rtmp


def render_nginx_config(
    *,
    app_url: str,
    http_listen: str,
    rtmp_listen: str,
    folder: Path,
    args: list[str] | None = None,
    rtmp_module: str = RTMP_MODULE,
    secret: str | None = None,
    user: str | None = None,
    edges: tuple[str, ...] = (),
) -> str:
    """The configuration, and its folders made (hls/, recordings/, tmp/)."""
    edges = tuple(str(ipaddress.ip_network(edge, strict=False)) for edge in edges)
    for sub in ("hls", "recordings", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    environment = Environment(
        loader=FileSystemLoader(Path(__file__).parent),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 (an nginx file, not HTML; every value is ours)
    )
    config = current_app.config
    secret = callback_secret() if secret is None else secret
    return environment.get_template("nginx.conf.j2").render(
        args=args or [],
        user=user,
        edges=edges,
        rtmp_module=rtmp_module,
        folder=str(folder),
        rtmp_listen=rtmp_listen,
        http_listen=http_listen,
        app=app_url.rstrip("/"),
        callback=f"{app_url.rstrip('/')}/streaming/rtmp?secret={secret}",
        update_seconds=config["STREAM_UPDATE_SECONDS"],
        cookie=config["SESSION_COOKIE_NAME"],
        remember_cookie=config.get("REMEMBER_COOKIE_NAME", "remember_token"),
    )


@streaming_cli.command("nginx-config")
@click.option(
    "--app",
    "app_url",
    default="http://127.0.0.1:5000",
    show_default=True,
    help="Where nginx reaches the app (gunicorn or flask run).",
)
@click.option(
    "--http",
    "http_listen",
    default="127.0.0.1:8080",
    show_default=True,
    help="Where nginx serves the app and HLS to browsers.",
)
@click.option(
    "--rtmp",
    "rtmp_listen",
    default="1935",
    show_default=True,
    help="Where publishers (OBS, meeting tools) connect.",
)
@click.option(
    "--folder",
    type=click.Path(path_type=Path),
    default=None,
    help="HLS, recordings and nginx's own files [STREAMING_FOLDER].",
)
@click.option(
    "--user",
    default=None,
    help="The user nginx's workers run as when root starts it (nginx's default: nobody).",
)
@click.option(
    "--edge",
    "edges",
    multiple=True,
    help="The address of a caching edge that fetches HLS for its own viewers (repeatable).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    default=None,
    help="Write here instead of printing.",
)
def nginx_config(app_url, http_listen, rtmp_listen, folder, user, edges, output):
    folder = (folder or streaming_folder()).resolve()
    args = ["--app", app_url, "--http", http_listen, "--rtmp", rtmp_listen]
    args += ["--user", user] if user else []
    for edge in edges:
        args += ["--edge", edge]
    try:
        ipaddress_checked = [ipaddress.ip_network(edge, strict=False) for edge in edges]
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--edge") from None
    del ipaddress_checked
    text = render_nginx_config(
        app_url=app_url,
        http_listen=http_listen,
        rtmp_listen=rtmp_listen,
        folder=folder,
        args=[shlex.quote(arg) for arg in args],
        user=user,
        edges=edges,
    )
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        output.chmod(0o600)  # it holds the callbacks' secret
        click.echo(f"Wrote {output}")
