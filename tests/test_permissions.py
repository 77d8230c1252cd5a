"""Every route checks who may use it: anonymous, participant, organizer, admin."""

import pytest

from tests.helpers import log_in
from webapp.people.models import Role
from webapp.series.models import SeriesStatus, Visibility

ADMIN_PAGES = ["/admin/", "/admin/users", "/admin/units"]


@pytest.fixture
def people(make_user):
    return {
        "admin": make_user(Role.ADMIN, email="admin@example.org"),
        "organizer": make_user(Role.ORGANIZER, email="organizer@example.org"),
        "other_organizer": make_user(Role.ORGANIZER, email="other@example.org"),
        "participant": make_user(Role.PARTICIPANT, email="cadre@example.org"),
        "outsider": make_user(Role.PARTICIPANT, email="outsider@example.org"),
    }


def client_as(app, user):
    client = app.test_client()
    if user is not None:
        assert log_in(client, user.email).status_code == 302
    return client


@pytest.mark.parametrize("page", ADMIN_PAGES)
def test_anonymous_visitors_are_sent_to_log_in(client, page):
    response = client.get(page)
    assert response.status_code == 302
    assert response.headers["Location"] == f"/login?next={page}"


@pytest.mark.parametrize("page", ADMIN_PAGES)
@pytest.mark.parametrize("role", ["participant", "organizer"])
def test_only_admins_open_admin_pages(app, people, page, role):
    assert client_as(app, people[role]).get(page).status_code == 403
    assert client_as(app, people["admin"]).get(page).status_code == 200


def test_a_participant_gets_403_on_an_organizers_draft_series(app, people, make_series):
    series = make_series(
        organizers=[people["organizer"]],
        status=SeriesStatus.DRAFT,
        participants=[people["participant"]],
    )
    url = f"/series/{series.id}"
    assert client_as(app, people["participant"]).get(url).status_code == 403
    assert client_as(app, people["other_organizer"]).get(url).status_code == 403
    assert client_as(app, people["organizer"]).get(url).status_code == 200
    assert client_as(app, people["admin"]).get(url).status_code == 200


def test_enrolled_only_series_is_for_its_participants(app, people, make_series):
    series = make_series(
        organizers=[people["organizer"]],
        visibility=Visibility.ENROLLED,
        participants=[people["participant"]],
    )
    url = f"/series/{series.id}"
    assert client_as(app, people["participant"]).get(url).status_code == 200
    assert client_as(app, people["outsider"]).get(url).status_code == 403
    assert client_as(app, None).get(url).status_code == 302


def test_public_published_series_is_open_to_everyone(app, people, make_series):
    series = make_series(visibility=Visibility.PUBLIC)
    assert client_as(app, None).get(f"/series/{series.id}").status_code == 200
    assert client_as(app, people["outsider"]).get(f"/series/{series.id}").status_code == 200


def test_unknown_series_is_404(app, people):
    assert client_as(app, people["admin"]).get("/series/999999").status_code == 404
