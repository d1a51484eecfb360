"""The staff console in real headless Chromium (Debian's chromium and chromedriver, driven by Selenium).

A support lead's path: sign in, edit a character's stats in the structured editor, see the change
through the API, schedule deletion and restore from the character's page, find both in the audit
trail, open the API docs. Each step leaves a screenshot in var/screenshots/console/.
"""

import json
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.contrib.auth import get_user_model

from characters.models import Character

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "var" / "screenshots" / "console"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, databases="__all__"),
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver"),
]


def navigate(browser, element) -> None:
    """Click a link or button that loads a page, and wait until the new page has replaced the old one
    (a click returns once dispatched: reading the page at once may read the old one)."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    element.click()
    WebDriverWait(browser, 15).until(expected_conditions.staleness_of(element))
    WebDriverWait(browser, 15).until(lambda driver: driver.execute_script("return document.readyState") == "complete")


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="questdb-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def replayed(check, timeout: float = 10.0) -> None:
    """Wait until every replica has replayed what `check` looks for (the console may read from them)."""
    deadline = time.monotonic() + timeout
    for alias in settings.REPLICA_ALIASES:
        while not check(alias):
            assert time.monotonic() < deadline, f"{alias} did not catch up"
            time.sleep(0.05)


def _errors_on(driver) -> str:
    """What the console says went wrong, for a failed assertion."""
    from selenium.webdriver.common.by import By

    shot(driver, "failed")
    return " | ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, ".errornote, .errorlist, .messagelist"))


def shot(driver, name: str) -> None:
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def test_a_support_lead_edits_deletes_restores_and_finds_it_all_audited(browser, live_server, make_user, write_key):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    lead = get_user_model().objects.create_superuser("lead", "lead@example.com", "a-long-staff-password")
    replayed(lambda alias: get_user_model().objects.using(alias).filter(pk=lead.pk).exists())
    character = Character.objects.create(user=make_user(username="Owner"), name="Mordain")
    replayed(lambda alias: Character.objects.using(alias).filter(pk=character.pk).exists())
    base = live_server.url

    browser.get(f"{base}/admin/")
    browser.find_element(By.NAME, "username").send_keys("lead")
    browser.find_element(By.NAME, "password").send_keys("a-long-staff-password")
    shot(browser, "01-sign-in")
    navigate(browser, browser.find_element(By.CSS_SELECTOR, "input[type=submit]"))
    assert "questdb staff console" in browser.page_source
    shot(browser, "02-dashboard")

    browser.get(f"{base}/admin/characters/character/{character.pk}/change/")
    editor = browser.find_element(
        By.CSS_SELECTOR, ".rjf-form-wrapper, [data-django-jsonform-container], .rjf-form-group"
    )
    assert editor.is_displayed()
    shot(browser, "03-structured-editor")
    level = browser.find_element(
        By.XPATH, "//div[contains(@class,'field-stats')]//label[normalize-space()='level']/following::input[1]"
    )
    level.clear()
    level.send_keys("42")
    shot(browser, "04-level-typed")
    # The editor writes its JSON into the form's hidden field after each keystroke: save once it has.
    WebDriverWait(browser, 10).until(
        lambda driver: (
            json.loads(driver.find_element(By.NAME, "stats").get_attribute("value") or "{}").get("level") == 42
        )
    )
    navigate(browser, browser.find_element(By.NAME, "_continue"))
    assert "was changed successfully" in browser.page_source, _errors_on(browser)
    shot(browser, "05-saved")

    api = requests.Session()
    api.headers["Authorization"] = f"Api-Key {write_key}"
    deadline, level_seen = time.monotonic() + 10, None
    while time.monotonic() < deadline:  # the API may read from the standby: allow for its replay lag
        level_seen = api.get(f"{base}/api/v1/characters/{character.pk}/", timeout=5).json()["stats"]["level"]
        if level_seen == 42:
            break
        time.sleep(0.2)
    assert level_seen == 42

    navigate(browser, browser.find_element(By.ID, "schedule-deletion-link"))
    assert "deleted for good at" in browser.page_source
    shot(browser, "06-schedule-deletion-confirmation")
    navigate(browser, browser.find_element(By.ID, "confirm-button"))
    assert browser.find_element(By.ID, "pending-deletion-banner").is_displayed()
    shot(browser, "07-pending-deletion")
    navigate(browser, browser.find_element(By.ID, "restore-button"))
    shot(browser, "08-restored")
    assert "Restored 1 character(s)." in browser.page_source
    shot(browser, "08-restored")

    navigate(browser, browser.find_element(By.ID, "audit-trail-link"))
    page = browser.page_source
    assert "schedule_deletion" in page
    assert "restore" in page
    assert "lead" in page
    shot(browser, "09-audit-trail")

    browser.get(f"{base}/admin/")
    browser.find_element(By.LINK_TEXT, "VIEW SITE").click() if browser.find_elements(
        By.LINK_TEXT, "VIEW SITE"
    ) else browser.get(f"{base}/api/docs/")
    operations = browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
    deadline = time.monotonic() + 15
    while not operations and time.monotonic() < deadline:
        time.sleep(0.2)
        operations = browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
    paths = {element.text for element in operations}
    assert "/api/v1/characters/{id}/" in {p.replace("\u200b", "") for p in paths}
    shot(browser, "10-api-docs")
