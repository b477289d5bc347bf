"""Swagger UI in a real browser (Debian's Chromium, headless, driven through its chromedriver):
the Authorize button logs in through /auth/jwt/login, "Try it out" on GET /users/me answers
200 with the account, Logout ends the login session on the server, and the page loads nothing
from anywhere but the app (every host but 127.0.0.1 is unresolvable to this browser).

Chromium is not part of the lock: `apt-get install chromium chromium-driver` (.ci/run installs
them when missing). Without them the test skips, and fails under REQUIRE_SERVICES=1 (CI)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as shown
from selenium.webdriver.support.ui import WebDriverWait

from app.factory import create_app
from app.settings import CoreSettings
from tests.helpers import PASSWORD, bearer
from tests.live_server import serve

EMAIL = "swagger@example.com"
WAIT = 30  # seconds for anything the page must show
ME = "#operations-users-getMe"  # Swagger UI's id for the operation: tag, then operationId

# The page's own code, nothing else: the database behind it changes nothing.
pytestmark = pytest.mark.backend_neutral


def _binaries() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        reason = (
            "Chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
        )
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason} and REQUIRE_SERVICES=1", pytrace=False)
        pytest.skip(reason)
    return chromium, driver


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    chromium, driver = _binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        # Offline: no host but the app's resolves, so a CDN asset could not load.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    ):
        options.add_argument(flag)
    session = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield session
    finally:
        session.quit()


def _visible(browser: WebDriver, css: str) -> WebElement:
    element: WebElement = WebDriverWait(browser, WAIT).until(
        shown.visibility_of_element_located((By.CSS_SELECTOR, css))
    )
    return element


def _click(browser: WebDriver, css: str) -> None:
    WebDriverWait(browser, WAIT).until(
        shown.element_to_be_clickable((By.CSS_SELECTOR, css))
    ).click()


def _execute_me(browser: WebDriver, expected: str) -> str:
    """Execute GET /users/me ("Try it out" already on), wait for the `expected` status (the
    previous answer may still be on the page meanwhile); the body the page shows."""
    _click(browser, f"{ME} button.execute")
    row = f"{ME} .live-responses-table tr.response"
    status = (By.CSS_SELECTOR, f"{row} .response-col_status")
    try:
        WebDriverWait(browser, WAIT).until(
            lambda b: b.find_element(*status).text.strip() == expected
        )
    except TimeoutException:
        pytest.fail(f"GET /users/me showed {browser.find_element(*status).text!r}, not {expected}")
    return browser.find_element(By.CSS_SELECTOR, f"{row} .response-col_description").text


def _live_sessions(base_url: str) -> int:
    """The account's live sessions, seen from a login of its own (counted, then subtracted)."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        token = client.post(
            "/auth/jwt/login", data={"username": EMAIL, "password": PASSWORD}
        ).json()["access_token"]
        sessions = client.get("/users/me/sessions", headers=bearer(token)).json()
        client.post("/auth/jwt/logout", headers=bearer(token))
    return len(sessions) - 1


def test_authorize_try_it_out_and_logout_in_a_real_browser(
    settings: CoreSettings, browser: WebDriver
) -> None:
    with serve(create_app(settings)) as base_url:
        registered = httpx.post(
            f"{base_url}/auth/register", json={"email": EMAIL, "password": PASSWORD}, timeout=30
        )
        assert registered.status_code == 201, registered.text
        browser.get(f"{base_url}/docs")

        # Authorize: the dialog asks for a username and a password only, and logs in.
        _click(browser, ".auth-wrapper button.authorize")
        _visible(browser, ".modal-ux #oauth_username").send_keys(EMAIL)
        _visible(browser, ".modal-ux #oauth_password").send_keys(PASSWORD)
        fields = browser.find_elements(By.CSS_SELECTOR, ".modal-ux input, .modal-ux select")
        shown_fields = [f.get_attribute("id") for f in fields if f.is_displayed()]
        assert shown_fields == ["oauth_username", "oauth_password"]
        _click(browser, ".modal-ux .auth-btn-wrapper button.authorize")
        logout = (
            By.XPATH,
            "//div[contains(@class, 'modal-ux')]//button[normalize-space()='Logout']",
        )
        WebDriverWait(browser, WAIT).until(shown.visibility_of_element_located(logout))
        assert "Authorized" in browser.find_element(By.CSS_SELECTOR, ".modal-ux").text
        assert _live_sessions(base_url) == 1
        _click(browser, ".modal-ux button.btn-done")

        # Try it out: GET /users/me with the token the dialog got.
        _click(browser, f"{ME} .opblock-summary-control")
        _click(browser, f"{ME} button.try-out__btn")
        assert EMAIL in _execute_me(browser, "200")

        # Logout: Swagger forgets the token and the page's plugin ends the session.
        _click(browser, ".auth-wrapper button.authorize")
        WebDriverWait(browser, WAIT).until(shown.element_to_be_clickable(logout)).click()
        _visible(browser, ".modal-ux #oauth_username")  # the dialog asks again
        _click(browser, ".modal-ux button.btn-done")
        WebDriverWait(browser, WAIT).until(lambda _: _live_sessions(base_url) == 0)
        _execute_me(browser, "401")  # Swagger sends no token any more

        # Everything the page loaded came from the app.
        loaded = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        assert loaded and all(url.startswith(base_url) for url in loaded), loaded
