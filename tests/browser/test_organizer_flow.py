"""The organizer's whole path in a real browser, and what the participant then sees."""

from tests.helpers import PASSWORD, xlsx_bytes
from webapp.people.models import Role


def participant_sheet(path) -> None:
    path.write_bytes(
        xlsx_bytes(
            [
                ["姓名", "手机号", "邮箱", "单位", "角色"],
                ["王建国", "13910000001", "", "大瓦窑村", "学员"],
                ["李春梅", "13910000002", "", "大瓦窑村", "联络员"],
                ["张淑珍", "13910000003", "", "小瓦窑村", ""],
            ]
        )
    )


def log_in(page, base, identifier, password=PASSWORD):
    page.goto(f"{base}/login")
    page.fill("#identifier", identifier)
    page.fill("#password", password)
    page.click("button.primary")
    page.wait_for_url(f"{base}/")


def test_organizer_builds_a_series_and_the_participant_sees_it(
    live_server, new_page, make_user, tmp_path
):
    make_user(Role.ORGANIZER, email="organizer@example.org", name="组织者")
    make_user(phone="13910000001", name="王建国")  # an existing account, in the sheet too
    sheet_path = tmp_path / "学员名单.xlsx"
    participant_sheet(sheet_path)

    page = new_page()
    log_in(page, live_server, "organizer@example.org")
    page.click("a.button:has-text('新建系列课程')")
    page.fill("#title", "卢沟桥乡基层党员干部能力提升研修班")
    page.fill("#description", "线上研修")
    page.select_option("#timezone", "Asia/Shanghai")
    page.click("button.primary")
    page.wait_for_selector("text=系列课程已创建为草稿")

    page.click("a.button:has-text('添加课次')")
    page.fill("#repeat-count", "3")
    page.select_option("#repeat-frequency", "daily")
    page.fill("#repeat-first_day", "2026-12-03")
    page.fill("#repeat-start", "16:00")
    page.fill("#repeat-end", "18:00")
    page.click("button[name=submit-repeat]")
    page.wait_for_selector("text=已添加 3 个课次")
    assert page.locator("tbody tr").count() == 3

    page.click("a.button:has-text('导入学员')")
    page.set_input_files("#sheet", str(sheet_path))
    page.click("button.primary")
    page.wait_for_selector("text=核对导入内容")
    # Neither village is a unit yet: the organizer says to create both, at the top.
    assert page.locator("tr.row-ok").count() == 0
    page.select_option("#unit-0", "new")
    page.select_option("#unit-1", "new")
    page.click("button:has-text('重新预览')")
    page.wait_for_selector("text=核对导入内容")
    assert page.locator("tr.row-ok").count() == 3
    page.click("text=导入 3 行")
    page.wait_for_selector("text=导入完成")
    assert page.locator("text=新建账号 2 个").count() == 1

    page.click("text=查看学员")
    page.click("a:has-text('卢沟桥乡基层党员干部能力提升研修班')")
    # Publishing asks first, saying what will happen; dismissed, nothing happens.
    questions = []

    def answer(dialog, accept):
        questions.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda dialog: answer(dialog, False))
    page.click("button:has-text('发布')")
    assert page.locator("button:has-text('发布')").count() == 1  # still a draft
    page.once("dialog", lambda dialog: answer(dialog, True))
    page.click("button:has-text('发布')")
    page.wait_for_selector("text=已发布：学员现在可以看到本系列课程")
    assert "已报名的 3 名学员" in questions[0], questions

    participant = new_page(phone=True)
    log_in(participant, live_server, "139 1000 0001")
    participant.click("text=我的课表")
    sessions = participant.locator("li.session")
    assert sessions.count() == 3
    text = participant.locator("main").inner_text()
    assert "2026年12月3日星期四 16:00–18:00" in text
    assert "2026年12月5日星期六 16:00–18:00" in text
    assert "即将开始" in text
