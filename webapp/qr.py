"""QR codes as inline SVG (no image library): calendar links, log-in links."""

import io

import segno


def qr_svg(text: str) -> str:
    svg = io.BytesIO()
    segno.make(text, error="m").save(svg, kind="svg", scale=4, border=2, xmldecl=False, svgns=True)
    return svg.getvalue().decode()
