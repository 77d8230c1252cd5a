from datetime import UTC, datetime
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from tests.helpers import log_in, post_form

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "webapp" / "translations" / "zh_Hans_CN" / "LC_MESSAGES" / "messages.po"
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}


def extracted_messages() -> set[str]:
    """Every user-visible string in the code and templates, as pybabel extracts them."""
    found = set()
    for subdir, method_map in (
        ("webapp", [("**.py", "python")]),
        ("webapp/templates", [("**.html", "jinja2"), ("**.txt", "jinja2")]),
    ):
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / subdir,
            method_map=method_map,
            keywords=KEYWORDS,
            directory_filter=lambda path: "__pycache__" not in path,
        ):
            found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_user_visible_string_has_a_chinese_translation():
    with CATALOG.open("rb") as handle:
        catalog = read_po(handle)
    translated = {
        message.id if isinstance(message.id, str) else message.id[0]
        for message in catalog
        if message.id
        and message.string
        and "fuzzy" not in message.flags
        and all(message.string if isinstance(message.string, tuple) else [message.string])
    }
    missing = extracted_messages() - translated
    assert not missing, f"untranslated: {sorted(missing)}"


def test_browser_asking_for_english_gets_english(client):
    page = client.get("/login", headers={"Accept-Language": "en-US,en;q=0.9"})
    text = page.get_data(as_text=True)
    assert '<html lang="en">' in text and "Email or mobile number" in text


def test_browser_asking_for_chinese_variants_gets_chinese(client):
    for header in ("zh-CN", "zh", "zh-Hans-CN,zh;q=0.9", "fr-FR,zh;q=0.5"):
        text = client.get("/login", headers={"Accept-Language": header}).get_data(as_text=True)
        assert "电子邮箱或手机号" in text, header


def test_anonymous_language_choice_is_remembered_by_the_browser(client):
    response = post_form(client, "/login", "/language", {"locale": "en", "next": "/login"})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert "Email or mobile number" in client.get("/login").get_data(as_text=True)


def test_logged_in_language_choice_is_remembered_for_the_user(app, make_user):
    make_user(email="cadre@example.org", name="王建国")
    first_browser = app.test_client()
    log_in(first_browser, "cadre@example.org")
    post_form(first_browser, "/", "/language", {"locale": "en", "next": "/"})
    assert "Welcome, 王建国" in first_browser.get("/").get_data(as_text=True)

    second_browser = app.test_client()  # no cookie: the choice comes from the account
    log_in(second_browser, "cadre@example.org")
    assert "Welcome, 王建国" in second_browser.get("/").get_data(as_text=True)


def test_unknown_language_is_ignored(client):
    post_form(client, "/login", "/language", {"locale": "xx", "next": "/login"})
    assert "电子邮箱或手机号" in client.get("/login").get_data(as_text=True)


def test_language_switch_never_redirects_off_site(client):
    response = post_form(
        client, "/login", "/language", {"locale": "en", "next": "https://evil.example/"}
    )
    assert response.headers["Location"] == "/"


def test_english_dates_name_the_zone(client, make_user, make_series):
    cadre = make_user(email="cadre@example.org", locale="en")
    make_series(
        participants=[cadre],
        timezone="Europe/Berlin",
        first_start=datetime(2027, 3, 29, 14, 0, tzinfo=UTC),
    )
    log_in(client, "cadre@example.org")
    page = client.get("/").get_data(as_text=True)
    # After the DST change on 28 March 2027 Berlin is UTC+2: 14:00Z is 16:00 local.
    assert "Monday, March 29, 2027 16:00" in page and "GMT+02:00 Europe/Berlin" in page
