"""The web playground in a real headless Chromium (Debian's chromium + chromedriver, driven by
Selenium), served through the real nginx of `lmforge deploy local`: a wrong key shows the 401
message, generation streams tokens into the page, every tab runs (chat: a conversation of two
messages), and screenshots are kept in test-artifacts/ for people to look at."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.servers import API_KEY

pytestmark = pytest.mark.integration
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(
            "Debian's chromium and chromium-driver are not installed (.ci/run installs them)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # No sandbox (CI runs as root); no background traffic, which this closed network refuses.
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_playground_through_nginx_in_chromium(deployment, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    url, _, _ = deployment
    wait = WebDriverWait(browser, 60)
    browser.get(url + "/")
    assert browser.title.startswith("lmforge")

    def text(element_id: str) -> str:
        return browser.find_element(By.ID, element_id).text

    def enter_key(value: str) -> None:
        box = browser.find_element(By.ID, "key")
        box.clear()
        box.send_keys(value, Keys.TAB)  # the page reacts on change

    # A wrong key: the model line and a generation both say 401 and what to do.
    enter_key("not-a-valid-key")
    wait.until(lambda _: "401" in text("model"))
    assert "check the API key" in text("model")
    browser.find_element(By.ID, "run-generate").click()
    wait.until(lambda _: "401" in text("generate-output"))
    output = browser.find_element(By.ID, "generate-output")
    assert "error" in output.get_attribute("class")

    # The right key: the served model's name, version and sha256 appear.
    enter_key(API_KEY)
    wait.until(lambda _: "sha256" in text("model"))

    # Streaming: record the output's length at every change; tokens arrive over many updates.
    browser.execute_script(
        """
        window.lengths = [];
        const out = document.getElementById("generate-output");
        new MutationObserver(() => window.lengths.push(out.textContent.length))
            .observe(out, {childList: true, characterData: true, subtree: true});
        """
    )
    for field, value in (
        ("prompt", "the cat sat on the"),
        ("max_new_tokens", "100"),
        ("seed", "3"),
    ):
        box = browser.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)
    browser.find_element(By.ID, "run-generate").click()
    wait.until(lambda _: "finish:" in text("generate-stats"))
    lengths = [n for n in browser.execute_script("return window.lengths") if n]
    assert len(set(lengths)) >= 3, lengths
    assert "100 tokens" in text("generate-stats") or "finish: stop" in text("generate-stats")
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "playground.png"))

    for tab, expect in (("classify", "%"), ("match", "0."), ("summarize", "")):
        browser.find_element(By.CSS_SELECTOR, f'nav button[data-tab="{tab}"]').click()
        assert browser.find_element(By.ID, tab).is_displayed()
        browser.find_element(By.ID, f"run-{tab}").click()
        wait.until(lambda _, tab=tab: text(f"{tab}-output"))
        out = browser.find_element(By.ID, f"{tab}-output")
        assert "error" not in out.get_attribute("class"), out.text
        assert expect in out.text
    browser.save_screenshot(str(ARTIFACTS / "playground-summarize.png"))

    # Chat: two messages make a conversation of four turns, each reply streamed in.
    browser.find_element(By.CSS_SELECTOR, 'nav button[data-tab="chat"]').click()
    assert browser.find_element(By.ID, "chat").is_displayed()
    for message, turns in (("", 2), ("And a tuple?", 4)):
        if message:
            browser.find_element(By.ID, "chat-input").send_keys(message)
        browser.find_element(By.ID, "run-chat").click()
        wait.until(lambda _: "finish:" in text("chat-stats") or text("chat-output"))
        assert not text("chat-output"), text("chat-output")
        log = browser.find_elements(By.CSS_SELECTOR, "#chat-log .turn")
        assert [t.get_attribute("class") for t in log] == ["turn user", "turn assistant"] * (
            turns // 2
        )
    assert log[2].text == "And a tuple?" and "tokens in" in text("chat-stats")
    assert not browser.find_element(By.ID, "chat-output").is_displayed()
    browser.save_screenshot(str(ARTIFACTS / "playground-chat.png"))
    assert (ARTIFACTS / "playground.png").read_bytes()[:4] == b"\x89PNG"
