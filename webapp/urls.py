"""URL helpers shared by several domains."""

from urllib.parse import urlsplit

from flask import current_app


def safe_next_url(target: str | None) -> str | None:
    """Return target if it stays on this site (a path), else None: no open redirects."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target:
        return None
    return target


def public_urls():
    """A URL builder for pages as everyone outside sees them, from BASE_URL (its scheme, host
    and path prefix), inside a request or not: what mails, feeds and robots carry. (Flask's
    SERVER_NAME would also change every link inside requests, where the request's own host,
    as forwarded by a trusted proxy, is right.) Bind once, build many."""
    base = urlsplit(current_app.config["BASE_URL"])
    return current_app.url_map.bind(
        base.netloc, script_name=base.path or "/", url_scheme=base.scheme or "http"
    )


def public_url(endpoint: str, **values) -> str:
    """One page's public address (see public_urls)."""
    return public_urls().build(endpoint, values, force_external=True)
