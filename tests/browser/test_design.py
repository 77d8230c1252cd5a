"""The design system as a browser computes it: actions are buttons (never underlined text),
form controls are styled (date, time, number, select), icons are inline SVG from our own
files, statuses are words, a wide table scrolls inside its card and the organizer's sessions
stack on a phone, an empty list offers its action, and a report prints without navigation,
buttons or forms. Nothing is loaded from another host."""

from datetime import timedelta
from urllib.parse import urlsplit

from tests.browser.test_organizer_flow import log_in
from webapp.db import db, utcnow
from webapp.people.models import Role


def style(page, selector: str, prop: str) -> str:
    return page.eval_on_selector(selector, f"e => getComputedStyle(e).{prop}")


def test_the_design_system_as_the_browser_draws_it(live_server, new_page, make_user, make_series):
    organizer = make_user(Role.ORGANIZER, email="organizer@example.org", name="组织者")
    people = [make_user(phone=f"1391000{n:04d}", name=f"学员{n}") for n in range(12)]
    series = make_series(title="卢沟桥乡研修班", organizers=[organizer], participants=people,
                         sessions=3, first_start=utcnow() + timedelta(days=2))  # fmt: skip
    empty = make_series(title="还没有课次的班", organizers=[organizer], sessions=0)
    db.session.commit()
    requested = []
    page = new_page(phone=True)
    page.on("request", lambda request: requested.append(urlsplit(request.url).hostname))
    log_in(page, live_server, "organizer@example.org")

    page.goto(f"{live_server}/series/{series.id}/manage")
    # The sessions table becomes one card per session on a phone.
    assert style(page, "table.stack tbody tr", "display") == "block"
    assert style(page, "table.stack thead", "position") == "absolute"  # read by screen readers
    # Actions are buttons with icons, on one line each, not underlined text.
    action = "td.row-actions a"
    assert style(page, action, "textDecorationLine") == "none"
    assert style(page, action, "borderTopStyle") == "solid"
    assert style(page, action, "whiteSpace") == "nowrap"
    assert page.locator(f"{action} svg.icon").count() >= 3
    assert page.eval_on_selector(".actions a.button", "e => e.getBoundingClientRect().height") >= 40
    # Statuses in words.
    assert page.locator("td .badge").first.inner_text() == "已安排"
    # No page-wide overflow, and the wide participants table scrolls inside its card.
    page.goto(f"{live_server}/series/{series.id}/participants")
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    wrap = "section.card .table-wrap"
    assert style(page, wrap, "overflowX") == "auto"
    assert page.eval_on_selector(wrap, "e => e.scrollWidth > e.clientWidth")
    assert page.eval_on_selector(wrap, "e => e.tabIndex") == 0  # reachable by keyboard

    # Form controls: date, time and number inputs and selects are drawn alike.
    page.goto(f"{live_server}/series/{series.id}/sessions/new")
    for control in ("input[type=date]", "input[type=time]", "input[type=number]", "main select"):
        assert style(page, control, "borderTopLeftRadius") == "8px", control
        assert page.eval_on_selector(control, "e => e.getBoundingClientRect().height") >= 40
    assert style(page, "main select", "appearance") == "none"

    # An empty list says what would fill it and offers that action.
    page.goto(f"{live_server}/series/{empty.id}/manage")
    assert page.locator(".empty svg.icon").count() >= 1
    assert page.locator(".empty a.button").first.inner_text().strip() == "添加课次"

    # A report prints as a document: no navigation, buttons or forms.
    page.goto(f"{live_server}/series/{series.id}/manage")
    page.emulate_media(media="print")
    assert style(page, "header.topbar", "display") == "none"
    assert style(page, ".actions", "display") == "none"
    assert style(page, "h1", "display") == "block"

    assert set(requested) == {"127.0.0.1"}  # the icons are inline, nothing from elsewhere
