"""The try-it page at / in a real headless Chromium (the OS package, driven by Selenium): type a
text, click Tag, and the highlighted spans are the entities /predict returns, at their offsets,
with a legend and the JSON view. All assets come from the server (no network needed)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

from tests.serving import loaded, serving

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
TEXT = "Angela Merkel visited Paris .\nShe met officials of the European Union in Brussels ."


def browser():
    if not (CHROMIUM and DRIVER):
        reason = "needs chromium and chromedriver (apt-get install chromium chromium-driver)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser test must run in CI: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def test_the_page_highlights_the_entities(tiny_model: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser()
    try:
        with serving(loaded(tiny_model)) as url:
            want = httpx.post(url + "/predict", json={"inputs": TEXT}).json()
            assert want, "the tiny model should find entities in this text"
            driver.get(url + "/")
            page = driver.page_source
            assert "http://" not in page.replace(url, "") and "https://" not in page  # no CDN
            area = driver.find_element(By.ID, "text")
            area.send_keys(TEXT)
            driver.find_element(By.ID, "tag").click()
            wait = WebDriverWait(driver, 20)
            wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "mark.entity")))
            marks = driver.find_elements(By.CSS_SELECTOR, "#result mark.entity")
            legend = {
                e.get_attribute("data-label")
                for e in driver.find_elements(By.CSS_SELECTOR, "#legend .swatch")
            }
            result_text = driver.find_element(By.ID, "result").get_attribute("textContent")
            driver.find_element(By.CSS_SELECTOR, "#json-view summary").click()
            json_view = driver.find_element(By.ID, "json").text
            colours = {
                m.get_attribute("data-label"): m.value_of_css_property("background-color")
                for m in marks
            }
        got = [
            (
                m.get_attribute("data-label"),
                int(m.get_attribute("data-start")),
                int(m.get_attribute("data-end")),
                m.get_attribute("title"),
            )
            for m in marks
        ]
    finally:
        driver.quit()
    assert [(e["entity_group"], e["start"], e["end"]) for e in want] == [g[:3] for g in got]
    for entity, (_, _, _, title) in zip(want, got, strict=True):
        assert title == f"{entity['entity_group']} · score {entity['score']:.3f}"  # on hover
    assert {e["entity_group"] for e in want} <= legend
    assert {"LOC", "ORG", "PER"} <= legend  # from /info, before any result
    # The text is shown whole, each entity followed by its label.
    plain = TEXT
    for e in reversed(want):
        plain = plain[: e["end"]] + e["entity_group"] + plain[e["end"] :]
    assert result_text == plain
    assert '"entity_group"' in json_view
    assert len(set(colours.values())) == len(colours)  # a colour per label
