"""Icons drawn inline from the vendored Lucide subset (webapp/static/vendor/lucide/icons).

`{{ icon('calendar') }}` gives an `<svg class="icon">` that takes the text's colour and size
and is hidden from screen readers (the words beside it say what it means); with `label=` it
stands alone and is announced by that label instead. An unknown name fails loudly when the
page is rendered, so a test of the page finds it.
"""

import re
from functools import cache
from pathlib import Path

from markupsafe import Markup, escape

ICONS = Path(__file__).parent / "static" / "vendor" / "lucide" / "icons"
_LICENSE_COMMENT = re.compile(r"<!--.*?-->\s*", re.S)
_CLASS = re.compile(r'\s*class="[^"]*"')
_SIZE = re.compile(r'\s*(width|height)="24"')


@cache
def _body(name: str) -> str:
    """The file's <svg …> element without its comment, class or fixed size, on one line."""
    if not re.fullmatch(r"[a-z0-9-]+", name):
        raise ValueError(f"not an icon name: {name!r}")
    text = (ICONS / f"{name}.svg").read_text(encoding="utf-8")
    text = _SIZE.sub("", _CLASS.sub("", _LICENSE_COMMENT.sub("", text)))
    return " ".join(text.split()).replace("<svg ", "<svg {attributes} ", 1)


def icon(name: str, label: str | None = None, class_: str = "") -> Markup:
    classes = f"icon {class_}".strip()
    if label:
        attributes = f'class="{classes}" role="img" aria-label="{escape(label)}" focusable="false"'
    else:
        attributes = f'class="{classes}" aria-hidden="true" focusable="false"'
    # The SVG is our own vendored file; the only text put in it (the label) is escaped.
    return Markup(_body(name).replace("{attributes}", attributes, 1))  # noqa: S704


def available() -> list[str]:
    return sorted(path.stem for path in ICONS.glob("*.svg"))
