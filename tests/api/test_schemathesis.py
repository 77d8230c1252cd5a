"""Schemathesis against the API's own OpenAPI document: generated requests (valid ones and
ones the document forbids) for every operation, with an admin's read-write token, must never
get a 5xx, and every answer must be what the document says (status, content type, body,
headers); requests the document forbids must be refused.

Bounded: a few dozen cases per operation, on the SQLite pass (the behaviour under test is
the API's, not the database's; the API's tests run on both)."""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import backend_name
from webapp import create_app
from webapp.api.tokens import Scope, create_token
from webapp.db import db, utcnow
from webapp.people.models import Role, UnitKind
from webapp.people.units import create_unit

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]
CASES_PER_OPERATION = 100


@pytest.fixture
def api_world(app, make_user, make_series):
    admin = make_user(Role.ADMIN, email="admin@example.org")
    village = create_unit("大瓦窑村", UnitKind.VILLAGE)
    cadres = [make_user(name=f"学员{n}", unit=village) for n in range(3)]
    make_series(organizers=[admin], participants=cadres, sessions=3)
    _token, secret = create_token(admin, name="fuzz", scope=Scope.WRITE, days=1, now=utcnow())
    db.session.commit()
    return secret


def _document() -> dict:
    # The document needs no database: a throwaway app serves it, at collection.
    return create_app({"TESTING": True}).test_client().get("/api/v1/openapi.json").get_json()


schema = schemathesis.openapi.from_dict(_document())
SECRET = {"token": ""}  # the running test's token, for the auth provider below


@schema.auth()
class BearerToken:
    """Schemathesis adds the token itself, so that the cases it makes without one (or with
    a broken one) reach the API as made."""

    def get(self, case, context):
        return SECRET["token"]

    def set(self, case, data, context):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schema.parametrize()
@settings(
    max_examples=CASES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same cases every run: CI fails only on a change
)
def test_the_api_keeps_to_its_document(case, app, api_world):
    if backend_name() != "sqlite":
        pytest.skip("schemathesis runs on the SQLite pass (see the module's docstring)")
    case.operation.schema.app = app  # this test's app, on its own database
    SECRET["token"] = api_world
    case.call_and_validate(checks=CHECKS, app=app)
