"""The operator console in a real browser: headless Chromium and its driver from Debian's
packages (`chromium`, `chromium-driver`; deploy/test installs them), driven by selenium.

Each page is saved as a screenshot under $TOPUP_TEST_ARTIFACTS (default .test-output/) so
a reviewer can look at what the operator sees.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from streams import topics
from tests.integration.console_fixtures import (
    OUTPUTS,
    TOKEN,
    console_after_demo_workload,
    statuses,
)
from tests.kafka_harness import REPO, decode_all, read_until

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
SHOTS = Path(os.environ.get("TOPUP_TEST_ARTIFACTS", REPO / ".test-output")) / "console"


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    # deploy/test installs both; a run without them is a broken setup, not a skip.
    assert CHROMIUM and DRIVER, "install Debian's chromium and chromium-driver (deploy/test)"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--disable-gpu", "--window-size=1400,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=DRIVER))
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


def shoot(driver: WebDriver, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot of {name}"
    print(f"screenshot: {path}")


def eventually(driver: WebDriver, check: Callable[[], bool], what: str,
               timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except WebDriverException:
            pass
        time.sleep(0.5)
    shoot(driver, "failure")
    raise AssertionError(f"not seen within {timeout_s}s: {what}; the page at "
                         f"{driver.current_url}:\n{driver.page_source[:3000]}")


def rows(driver: WebDriver, css: str) -> list:
    return driver.find_elements(By.CSS_SELECTOR, css)


def test_an_operator_approves_a_held_order_and_freezes_in_the_browser(
        kafka_env, workers, browser):
    console, held = console_after_demo_workload(kafka_env, workers)

    # No token, no console: the browser gets the login form.
    browser.get(f"{console.url}/")
    assert rows(browser, "tr.case") == []
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "login").click()

    # The queue after the demo's workload: every held order, the most at stake first,
    # each with its evidence.
    eventually(browser, lambda: len(rows(browser, "tr.case")) == len(held),
               f"{len(held)} cases in the queue")
    cases = rows(browser, "tr.case")
    assert {c.get_attribute("data-order") for c in cases} == held
    stakes = [int(c.find_element(By.CSS_SELECTOR, ".num").text.split()[0]) for c in cases]
    assert stakes == sorted(stakes, reverse=True)
    answered = 0
    for case in cases:
        assert "expected.amount_minor=" in case.find_element(By.CSS_SELECTOR, ".evidence").text
        # ... and the risk stage's verdict, score and reasons beside it.
        assert case.find_element(By.CSS_SELECTOR, ".risk").text.startswith("risk ")
        # ... and the velocity counts that decision saw (those that answered in time).
        velocity = case.find_elements(By.CSS_SELECTOR, "tr[data-velocity]")
        assert all("attempts=" in row.text for row in velocity)
        answered += bool(velocity)
    assert answered > 0
    shoot(browser, "queue")
    held_row = cases[0]
    order_id = held_row.get_attribute("data-order")

    held_row.find_element(By.NAME, "by").send_keys("ann@risk")
    held_row.find_element(By.NAME, "note").send_keys("customer confirmed the fee")
    held_row.find_element(By.CSS_SELECTOR, "button[value=approve]").click()
    eventually(browser, lambda: "REVIEW_APPROVED" in browser.find_element(By.ID, "flash").text,
               "the approval's confirmation")
    assert {c.get_attribute("data-order") for c in rows(browser, "tr.case")} == held - {
        order_id}
    shoot(browser, "queue-after-approval")

    # The credit is on topup.credits, and on the order page's timeline.
    done = read_until(console.settings, OUTPUTS,
                      lambda rs: statuses(rs).get(order_id) == "CREDITED",
                      workers=[console.worker])
    credit = next(c for c in decode_all(done, topics.CREDITS) if c["order_id"] == order_id)
    browser.get(f"{console.url}/orders/{order_id}")

    def credited_on_page() -> bool:
        browser.refresh()
        return bool(rows(browser, f"tr.evidence-item[data-topic='{topics.CREDITS}']"))

    eventually(browser, credited_on_page, "the credit on the order page")
    timeline = [r.get_attribute("data-topic") for r in rows(browser, "tr.evidence-item")]
    assert timeline.index(topics.REVIEW_CASES) < timeline.index(topics.CREDITS)
    assert browser.find_element(By.ID, "order-id").text == order_id
    credit_row = rows(browser, f"tr.evidence-item[data-topic='{topics.CREDITS}']")[0]
    assert credit["entry_id"] in credit_row.text
    shoot(browser, "order")

    browser.get(f"{console.url}/accounts/{credit['account_id']}")
    assert credit["entry_id"] in browser.find_element(By.ID, "ledger").text
    shoot(browser, "account")

    browser.get(f"{console.url}/funnel")
    orders = browser.find_element(By.CSS_SELECTOR, "tr.series[data-series=orders]")
    assert int(orders.get_attribute("data-total")) >= 60
    shoot(browser, "funnel")

    # A freeze placed through the form shows as active.
    browser.get(f"{console.url}/freezes")
    assert rows(browser, "tr.freeze") == []
    browser.find_element(By.ID, "scope").send_keys("merchant:m-browser")
    browser.find_element(By.ID, "by").send_keys("ann@risk")
    browser.find_element(By.ID, "reason").send_keys("chargeback wave")
    browser.find_element(By.ID, "freeze").click()
    eventually(browser, lambda: "FREEZE_CREDITS" in browser.find_element(By.ID, "flash").text,
               "the freeze's confirmation")
    active = rows(browser, "tr.freeze")
    assert [(r.get_attribute("data-scope"), r.get_attribute("data-what")) for r in active] == [
        ("merchant:m-browser", "credits")]
    assert "ann@risk" in active[0].text and "chargeback wave" in active[0].text
    shoot(browser, "freezes")

    # The match rate per provider, from the same figures as `topup-guard recon report`.
    browser.get(f"{console.url}/recon?since=all")
    assert browser.find_element(By.ID, "providers").text.startswith("Provider")
    shoot(browser, "recon")

    # Logging out clears the session: the console asks for the token again.
    browser.find_element(By.ID, "logout").click()
    eventually(browser, lambda: "logged out" in browser.find_element(By.ID, "flash").text,
               "the logout's confirmation")
    browser.get(f"{console.url}/")
    assert browser.find_elements(By.ID, "token") and rows(browser, "tr.case") == []
