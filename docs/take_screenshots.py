"""Take the README's screenshots from a running demo (make demo) with Debian's Chromium.

.venv/bin/python docs/take_screenshots.py [http://127.0.0.1:8080]

(port 8080 when the demo runs nginx-rtmp and its broadcast: the live pages are shot too.)
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"
OUT = Path(__file__).resolve().parent / "screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1200, "height": 800}


def log_in(page, login: str, password: str) -> None:
    page.goto(f"{BASE}/login")
    page.fill("#identifier", login)
    page.fill("#password", password)
    page.click("button.primary")
    page.wait_for_url(f"{BASE}/")


def signin_pdf_page(pdf: bytes) -> None:
    """The sign-in sheets' first page as an image (pdftoppm, from poppler-utils)."""
    if shutil.which("pdftoppm") is None:
        print("pdftoppm not found (apt-get install poppler-utils): signin-pdf.png not taken")
        return
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "signin.pdf"
        source.write_bytes(pdf)
        subprocess.run(
            ["pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile", source,
             OUT / "signin-pdf"],
            check=True,
        )  # fmt: skip


def main() -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        phone = browser.new_context(viewport=PHONE, locale="zh-CN", device_scale_factor=2)
        page = phone.new_page()
        page.goto(f"{BASE}/login/code")
        page.screenshot(path=OUT / "login-code-phone.png")
        page.goto(f"{BASE}/login")
        page.screenshot(path=OUT / "login-phone.png")
        log_in(page, "13910000001", "demo-participant-2026")
        page.screenshot(path=OUT / "home-participant-phone.png", full_page=False)

        live_session = None
        watch = page.locator(".live-card a.button")
        if watch.count():  # the demo's broadcast is on the air
            page.screenshot(path=OUT / "home-live-phone.png")
            live_session = watch.first.get_attribute("href").split("/")[2]
            watch.first.click()
            page.wait_for_timeout(8000)  # the video starts and plays a few seconds
            page.screenshot(path=OUT / "watch-live-phone.png")
        page.goto(f"{BASE}/my/schedule")
        page.screenshot(path=OUT / "schedule-participant-phone.png")
        page.goto(f"{BASE}/my/attendance")
        page.screenshot(path=OUT / "attendance-mine-phone.png")
        page.goto(f"{BASE}/account/calendar")
        make_link = page.get_by_role("button", name="生成订阅链接")
        if make_link.count():  # the first visit: the link is made when asked for
            make_link.first.click()
            page.wait_for_load_state()
        page.screenshot(path=OUT / "calendar-subscribe-phone.png")

        desktop = browser.new_context(viewport=DESKTOP, locale="zh-CN")
        page = desktop.new_page()
        log_in(page, "organizer@example.org", "demo-organizer-2026")
        page.click("a:has-text('卢沟桥乡基层党员干部能力提升研修班')")
        page.screenshot(path=OUT / "series-manage.png", full_page=True)
        manage_url = page.url
        organizer_phone = browser.new_context(viewport=PHONE, locale="zh-CN", device_scale_factor=2)
        small = organizer_phone.new_page()
        log_in(small, "organizer@example.org", "demo-organizer-2026")
        small.goto(manage_url)
        small.screenshot(path=OUT / "series-manage-phone.png")
        organizer_phone.close()
        page.click("a.button:has-text('添加课次')")
        page.screenshot(path=OUT / "sessions-new.png")
        page.go_back()
        page.click("a.button:has-text('导入学员')")
        sheet = OUT / "_demo-import.xlsx"
        sheet.write_bytes(demo_sheet())
        page.set_input_files("#sheet", str(sheet))
        page.click("button.primary")
        page.wait_for_selector("table.import")
        sheet.unlink()
        page.screenshot(path=OUT / "import-preview.png", full_page=True)
        if live_session:
            page.goto(f"{BASE}/sessions/{live_session}/stream")
            page.screenshot(path=OUT / "stream-organizer.png", full_page=True)
            page.goto(f"{BASE}/sessions/{live_session}/live")
            page.screenshot(path=OUT / "live-organizer.png", full_page=True)
            page.goto(f"{BASE}/sessions/{live_session}/attendance")
            page.screenshot(path=OUT / "attendance-session.png")
            page.goto(f"{BASE}/sessions/{live_session}/checkin/screen")
            page.screenshot(path=OUT / "checkin-screen.png")
        page.goto(f"{BASE}/series/1/attendance")
        page.screenshot(path=OUT / "attendance-series.png")
        signin_pdf_page(page.request.get(f"{BASE}/series/1/attendance/signin.pdf").body())
        page.goto(f"{BASE}/series/1/reminders")
        page.screenshot(path=OUT / "reminders.png", full_page=True)
        page.goto(f"{BASE}/series/1/participants")
        page.click("button:has-text('发送登录链接') >> nth=0")  # the worker sends it by SMS
        page.wait_for_load_state()
        page.screenshot(path=OUT / "series-participants.png")
        page.goto(f"{BASE}/series/1/manage")
        page.click("a:has-text('改期') >> nth=0")
        page.screenshot(path=OUT / "reschedule-reach.png")

        admin = browser.new_context(viewport=DESKTOP, locale="zh-CN").new_page()
        log_in(admin, "admin@example.org", "demo-admin-2026")
        admin.goto(f"{BASE}/admin/status")
        admin.screenshot(path=OUT / "admin-status.png", full_page=True)
        admin.goto(f"{BASE}/admin/channels")
        admin.screenshot(path=OUT / "admin-channels.png", full_page=True)
        admin.goto(f"{BASE}/admin/users/3")
        admin.screenshot(path=OUT / "admin-user.png", full_page=True)
        admin.wait_for_timeout(3000)  # the worker sends the log-in link meanwhile
        admin.goto(f"{BASE}/admin/mail")
        admin.screenshot(path=OUT / "admin-mail.png")
        admin.goto(f"{BASE}/admin/audit")
        admin.screenshot(path=OUT / "admin-audit.png")
        admin_phone = browser.new_context(viewport=PHONE, locale="zh-CN", device_scale_factor=2)
        small = admin_phone.new_page()
        log_in(small, "admin@example.org", "demo-admin-2026")
        small.goto(f"{BASE}/admin/units")
        small.click("a:has-text('大瓦窑村')")
        small.screenshot(path=OUT / "admin-unit-phone.png")
        admin_phone.close()
        browser.close()


def demo_sheet() -> bytes:
    """A small sheet with typical mistakes, to show the import preview."""
    import io

    import openpyxl

    workbook = openpyxl.Workbook()
    for row in (
        ("卢沟桥乡 2026 年秋季参训人员名单",),  # a title row above the header
        ("姓名", "手机号", "邮箱", "单位", "职务", "角色"),
        ("赵新华", "13920000001", "", "大瓦窑村委会", "村委会主任", "学员"),
        ("钱立新", "1392000", "", "小瓦窑村", "", ""),
        ("孙海燕", "13920000003", "sun@", "新建社区", "", ""),
        ("", "13920000004", "", "大井村", "", ""),
        ("赵新华", "139 2000 0001", "", "大瓦窑村", "", ""),
        ("王建国", "13910000001", "", "大瓦窑村", "", ""),
        ("周丽华", "13920000007", "", "大瓦窖村", "会计", ""),
    ):
        workbook.active.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


if __name__ == "__main__":
    main()
