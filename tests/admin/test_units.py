"""The admin's unit tree: create, rename, move, merge (members, liaisons, sub-units, quotas,
robots, calendar links and history move over), deactivate."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from tests.helpers import log_in, post_form
from webapp.audit import AuditEntry
from webapp.db import db
from webapp.errors import Conflict
from webapp.feeds.links import link_token, match_token, token_for
from webapp.feeds.models import FeedKind
from webapp.people.models import Role, Unit, UnitKind
from webapp.people.units import (
    add_liaison,
    create_unit,
    merge_units,
    set_unit_active,
    unit_tree,
)
from webapp.reminders.models import Webhook, WebhookKind
from webapp.series.enrollment import set_unit_quota
from webapp.series.import_rows import analyse
from webapp.series.models import UnitQuota

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def _admin(client, make_user):
    admin = make_user(Role.ADMIN, email="admin@example.org", name="管理员")
    log_in(client, "admin@example.org")
    return admin


def _actions(object_id: int) -> list[str]:
    return list(
        db.session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.object_type == "unit", AuditEntry.object_id == object_id)
            .order_by(AuditEntry.id)
        )
    )


def test_an_admin_adds_renames_and_moves_units_and_each_change_is_logged(client, make_user):
    _admin(client, make_user)
    township = create_unit("卢沟桥乡", UnitKind.TOWNSHIP)
    other = create_unit("宛平地区", UnitKind.TOWNSHIP)
    db.session.commit()
    response = post_form(
        client,
        "/admin/units",
        "/admin/units",
        {"name": " 大瓦窑村\x07 ", "kind": "village", "parent_id": str(township.id),
         "add_unit": "1"},
    )  # fmt: skip
    assert response.status_code == 302
    village = db.session.scalar(select(Unit).where(Unit.name == "大瓦窑村"))
    assert village.parent_id == township.id  # the name was cleaned at the boundary
    # The same name twice under one unit: refused, in the user's language, nothing lost.
    again = post_form(
        client,
        "/admin/units",
        "/admin/units",
        {"name": "大瓦窑村", "kind": "village", "parent_id": str(township.id), "add_unit": "1"},
    )
    assert again.status_code == 400 and "已有名为“大瓦窑村”的单位" in again.text
    page = f"/admin/units/{village.id}"
    post_form(client, page, page, {"name": "大瓦窑社区", "kind": "community"})
    post_form(client, page, page, {"parent_id": str(other.id), "move": "1"})
    db.session.expire_all()
    assert (village.name, village.kind, village.parent_id) == (
        "大瓦窑社区",
        UnitKind.COMMUNITY,
        other.id,
    )
    assert _actions(village.id) == ["unit.created", "unit.renamed", "unit.moved"]
    moved = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "unit.moved"))
    assert moved.actor_name == "管理员" and moved.details == {"parent": ["卢沟桥乡", "宛平地区"]}


def test_a_unit_cannot_go_under_itself_or_a_unit_below_it(client, make_user):
    _admin(client, make_user)
    township = create_unit("卢沟桥乡", UnitKind.TOWNSHIP)
    village = create_unit("大瓦窑村", UnitKind.VILLAGE, township)
    db.session.commit()
    page = f"/admin/units/{township.id}"
    # The form does not offer it; a forged request is refused all the same.
    assert (
        f'value="{village.id}"'
        not in client.get(page).text.split('name="parent_id"')[1].split("</select>")[0]
    )
    response = post_form(client, page, page, {"parent_id": str(village.id), "move": "1"})
    assert response.status_code == 400
    db.session.expire_all()
    assert township.parent_id is None


def test_merging_moves_members_liaisons_sub_units_quotas_robots_and_links(
    client, make_user, make_series
):
    _admin(client, make_user)
    township = create_unit("卢沟桥乡", UnitKind.TOWNSHIP)
    old = create_unit("大瓦窑村委会", UnitKind.VILLAGE, township)
    new = create_unit("大瓦窑村", UnitKind.VILLAGE, township)
    branch = create_unit("第一党支部", UnitKind.BRANCH, old)
    db.session.commit()
    cadres = [make_user(name=f"村干部{n}", unit=old) for n in range(3)]
    liaison = make_user(name="联络员甲", unit=old)
    series = make_series(participants=cadres)
    set_unit_quota(series, old, 5, now=NOW)
    set_unit_quota(series, new, 2, now=NOW)
    robot = Webhook(
        name="村群", kind=WebhookKind.GENERIC, url="https://example.org/hook", unit_id=old.id
    )
    db.session.add(robot)
    add_liaison(old, liaison)
    unit_link = token_for(liaison, FeedKind.UNIT, old.id, now=NOW)
    db.session.commit()
    old_id = old.id

    page = f"/admin/units/{old.id}"
    assert "这一操作无法撤销" in client.get(page).text  # the page says what will happen
    response = post_form(client, page, page, {"target_id": str(new.id), "merge": "1"})
    assert response.status_code == 302 and response.headers["Location"].endswith(
        f"/admin/units/{new.id}"
    )
    db.session.expire_all()
    assert db.session.get(Unit, old_id) is None
    assert {cadre.unit_id for cadre in cadres} == {new.id}
    assert liaison in new.liaisons and branch.parent_id == new.id
    quota = db.session.get(UnitQuota, (series.id, new.id))
    assert quota.quota == 7  # both quotas: the merged unit may fill the seats of each
    assert db.session.get(Webhook, robot.id).unit_id == new.id
    # The liaison's calendar link is unchanged and shows the merged unit now.
    assert match_token(link_token(unit_link)).key == f"unit:{new.id}"
    merged = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "unit.merged"))
    assert merged.object_id == new.id
    assert merged.details["from"] == "大瓦窑村委会" and merged.details["members"] == 4
    assert merged.details["sub_units"] == ["第一党支部"]
    # The history of the merged unit stays readable under its old number.
    assert "unit.created" in _actions(old_id)


def test_merging_two_units_with_a_sub_unit_of_the_same_name_is_refused(client, make_user):
    _admin(client, make_user)
    first = create_unit("一村", UnitKind.VILLAGE)
    second = create_unit("二村", UnitKind.VILLAGE)
    create_unit("党支部", UnitKind.BRANCH, first)
    create_unit("党支部", UnitKind.BRANCH, second)
    db.session.commit()
    page = f"/admin/units/{first.id}"
    response = post_form(client, page, page, {"target_id": str(second.id), "merge": "1"})
    assert response.status_code == 400
    assert "两个单位下都有名为“党支部”的下级单位" in response.text
    db.session.expire_all()
    assert db.session.get(Unit, first.id) is not None


def test_a_deactivated_unit_is_kept_but_offered_nowhere(client, make_user, make_series):
    _admin(client, make_user)
    township = create_unit("卢沟桥乡", UnitKind.TOWNSHIP)
    village = create_unit("小屯村", UnitKind.VILLAGE, township)
    db.session.commit()
    cadre = make_user(name="王建国", unit=village)
    # A unit with active units below it is not deactivated by surprise.
    response = post_form(
        client, f"/admin/units/{township.id}", f"/admin/units/{township.id}/deactivate", {}
    )
    assert "请先停用或移走“卢沟桥乡”下面的单位" in client.get(response.headers["Location"]).text
    post_form(client, f"/admin/units/{village.id}", f"/admin/units/{village.id}/deactivate", {})
    db.session.expire_all()
    assert not village.is_active and cadre.unit_id == village.id  # members kept
    assert village not in [unit for unit, _depth in unit_tree()]
    tree_page = client.get("/admin/units").text
    assert "小屯村" in tree_page and "已停用" in tree_page  # still in the admin's tree
    series = make_series(organizers=[make_user(Role.ORGANIZER)])
    choices = client.get(f"/series/{series.id}/participants").text
    assert "小屯村" not in choices
    post_form(client, f"/admin/units/{village.id}", f"/admin/units/{village.id}/reactivate", {})
    db.session.expire_all()
    assert village.is_active
    assert _actions(village.id)[-2:] == ["unit.deactivated", "unit.reactivated"]


def test_an_import_does_not_match_a_deactivated_unit(app, make_series):
    village = create_unit("小屯村", UnitKind.VILLAGE)
    set_unit_active(village, False)
    series = make_series()
    rows = [{"line": 2, "name": "王建国", "phone": "13910000001", "email": "", "unit": "小屯村",
             "title": "", "role": ""}]  # fmt: skip
    analysis = analyse(rows, series)
    assert analysis.rows[0].unit_obj is None
    assert any("已停用" in problem for problem in analysis.rows[0].problems)


def test_the_service_refuses_merging_into_a_unit_below(app):
    township = create_unit("卢沟桥乡", UnitKind.TOWNSHIP)
    village = create_unit("大瓦窑村", UnitKind.VILLAGE, township)
    with pytest.raises(Conflict):
        merge_units(township, village)
    with pytest.raises(Conflict):
        merge_units(village, village)
