"""End to end in a real browser: ``streamlit run app.py``, headless Chromium, the real models.

A researcher's first minutes: ask a question and wait for the streamed answer (the offline
SmolLM2 GGUF, no scripted generator), follow a citation to PubMed, download the sources as
RIS, then search with a year filter. Then the loop after it: screen by study design, follow
a source to its similar articles, watch the search, and after an index update read the What's
new page. The index is small but real (MiniLM embeddings of real records) and holds one
hostile record whose script must never run. Screenshots are kept in ``tests/artifacts/``
(the What's new one is the README's, ``docs/screenshot-whats-new.png``).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.app_index import HOSTILE_PMID, QUESTION, REAL_PMIDS, build_app_index
from tests.conftest import KEPT_SETTINGS, METAPUB_PMIDS, ROOT, needs_shared_data

pytestmark = [pytest.mark.slow, needs_shared_data()]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = ROOT / "tests" / "artifacts"
START_TIMEOUT_S = 120  # streamlit import + first page on a busy 2-core machine
ANSWER_TIMEOUT_S = 240  # first question: index + encoder + SmolLM2 load, then generation
STEP_TIMEOUT_S = 60
YEAR_FROM = 2020
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # needed as root (CI containers)
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1800",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class App:
    """The running app: its URL, and the environment its commands (update, watch) need."""

    url: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """``streamlit run app.py`` on a free localhost port, against a small real index."""
    data_dir = tmp_path_factory.mktemp("browser") / "data"
    build_app_index(data_dir)
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PUBMED_RAG_") or k in KEPT_SETTINGS
    }
    env.update(
        PUBMED_RAG_DATA_DIR=str(data_dir),
        PUBMED_RAG_OFFLINE="1",
        # One sentence from a short evidence prompt keeps generation to seconds on 2 cores;
        # the grammar bounds the sentence well inside the token limit. Temperature 0 makes
        # SmolLM2 repeatable on one CPU; the asserts hold whatever it writes.
        PUBMED_RAG_MAX_ANSWER_TOKENS="160",
        PUBMED_RAG_MAX_ANSWER_SENTENCES="1",
        PUBMED_RAG_TOP_K="2",
        PUBMED_RAG_N_CTX="2048",
        PUBMED_RAG_TEMPERATURE="0",
        HF_HUB_OFFLINE="1",
        PYTHONPATH=str(ROOT),
    )
    log_path = data_dir.parent / "streamlit.log"
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)]
    command += ["--server.address", "127.0.0.1", "--server.headless", "true"]
    command += ["--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"streamlit exited: {log_path.read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start: {log_path.read_text(errors='replace')}")
            time.sleep(0.3)  # polling a server that is starting: no event to wait on
        yield App(url, env)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[tuple[object, Path]]:
    """A headless Chromium with a fresh profile, downloading into a temporary folder."""
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip("chromium and chromium-driver are not installed (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    try:
        yield driver, downloads
    finally:
        driver.quit()


def test_researcher_asks_follows_a_citation_exports_and_filters(app: App, browser: tuple) -> None:
    driver, downloads = browser
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        _researcher_session(driver, downloads, app.url)
    except Exception:
        driver.save_screenshot(str(ARTIFACTS / "browser-failure.png"))
        raise


class Page:
    """What both sessions read off the page: waits, the main area's text, the source cards."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def wait(self, seconds: float = STEP_TIMEOUT_S) -> Any:
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, seconds, poll_frequency=0.2)

    def main_text(self) -> str:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, '[data-testid="stMain"]').text

    def cards(self) -> list:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, ".pubmed-rag-source")

    def results(self, filtered: bool, heading: str = "") -> list:
        """The cards of a search once all are drawn (``[]`` before): filtered or not, under
        ``heading``."""
        text = self.main_text()
        found = re.search(r"(\d+) articles ·", text)
        shown = self.cards()
        complete = bool(found) and len(shown) == int(found.group(1)) > 0
        ready = complete and (("filtered" in text) == filtered) and heading in text
        return shown if ready and all(c.text.strip() for c in shown) else []


def _researcher_session(driver: Any, downloads: Path, app_url: str) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec

    page = Page(driver)
    wait, main_text, cards, results = page.wait, page.main_text, page.cards, page.results

    # -- Ask: the answer streams in, then stands with its sources --------------------------
    driver.get(app_url)
    wait(START_TIMEOUT_S).until(
        lambda d: "Index v000001" in d.find_element(By.TAG_NAME, "body").text
    )
    box = wait().until(ec.element_to_be_clickable((By.CSS_SELECTOR, "textarea")))
    box.click()
    box.send_keys(QUESTION)
    box.send_keys(Keys.CONTROL, Keys.ENTER)  # submits the form, as the hint under it says

    cursor_seen = False

    def answered(_: object) -> bool:
        # Done when the script has drawn everything: the heading, then every source card.
        nonlocal cursor_seen
        text = main_text()
        cursor_seen = cursor_seen or "▌" in text
        if "generator failed" in text:
            return True
        found = re.search(r"Sources: \d+ cited of (\d+) found|Sources \((\d+) found", text)
        shown = cards()
        return (
            bool(found)
            and len(shown) == int(found.group(1) or found.group(2))
            and all(card.text.strip() for card in shown)
        )

    wait(ANSWER_TIMEOUT_S).until(answered)
    text = main_text()
    driver.save_screenshot(str(ARTIFACTS / "browser-ask.png"))
    assert "generator failed" not in text, text
    assert re.search(r"Sources: \d+ cited of \d+ found", text), text  # cited by construction
    assert "model offline:SmolLM2" in text

    # The key evidence: quotes from the sources, each with a numbered PubMed link.
    evidence = driver.find_elements(By.CSS_SELECTOR, ".pubmed-rag-evidence")
    assert evidence, "no key evidence shown"
    source_pmids = {c.get_attribute("data-pmid") for c in cards()}
    for item in evidence:
        assert item.get_attribute("data-pmid") in source_pmids
        (quote_link,) = item.find_elements(By.CSS_SELECTOR, "a")
        assert quote_link.get_attribute("href") == (
            f"https://pubmed.ncbi.nlm.nih.gov/{item.get_attribute('data-pmid')}/"
        )

    # Every answer sentence ends cited, with a support label: what the design guarantees,
    # whatever words the model chose on this CPU.
    sentences = driver.find_elements(By.CSS_SELECTOR, ".pubmed-rag-sentence")
    assert sentences, "no checked answer sentence"
    citations = []
    for sentence in sentences:
        links = [
            link
            for link in sentence.find_elements(
                By.CSS_SELECTOR, 'a[href^="https://pubmed.ncbi.nlm.nih.gov/"]'
            )
            if re.fullmatch(r"\[\d+\]", link.text.strip())
        ]
        assert links, f"an answer sentence without a citation: {sentence.text}"
        citations += links
        (label,) = sentence.find_elements(By.CSS_SELECTOR, ".pubmed-rag-support")
        assert label.get_attribute("data-support") in {"supported", "weak", "unsupported"}
    cited_pmid = re.search(r"/(\d+)/$", citations[0].get_attribute("href") or "")
    assert cited_pmid
    card = next(c for c in cards() if c.get_attribute("data-pmid") == cited_pmid.group(1))
    assert "cited" in card.text and "PubMed" in card.text
    number = int(citations[0].text.strip("[]"))
    assert card.text.startswith(f"{number}.")

    # The hostile record is among the sources and shown as text; its script never ran.
    sources = [c.get_attribute("data-pmid") for c in cards()]
    assert HOSTILE_PMID in sources
    hostile = next(c for c in cards() if c.get_attribute("data-pmid") == HOSTILE_PMID)
    assert "<script>window.__pwned = 1</script>" in hostile.text
    assert driver.execute_script("return window.__pwned") is None
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018 - reading it is the check

    # -- Export: the answer's sources as RIS ---------------------------------------------------
    ris_button = next(
        button
        for button in driver.find_elements(
            By.CSS_SELECTOR, '[data-testid="stDownloadButton"] button'
        )
        if button.text.strip().endswith("RIS")
    )
    ris_button.click()
    wait().until(lambda _: [p for p in downloads.glob("*.ris") if p.stat().st_size > 0])
    ris = next(downloads.glob("*.ris")).read_text(encoding="utf-8")
    assert ris.startswith("TY  - JOUR")
    assert ris.count("ER  - ") == len(sources)
    assert f"AN  - {cited_pmid.group(1)}" in ris

    # -- Search, then narrow it to YEAR_FROM and later ------------------------------------------------
    driver.find_element(By.CSS_SELECTOR, '[data-testid="stSidebarNav"] a[href$="/search"]').click()
    terms = wait().until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, 'input[aria-label="Search terms"]'))
    )
    terms.send_keys("proton pump inhibitor kidney", Keys.ENTER)

    years = [int(c.get_attribute("data-year") or 0) for c in wait().until(lambda _: results(False))]
    assert min(years) < YEAR_FROM, years  # the unfiltered result spans older years
    # The year chart is drawn by a component that may load after the cards.
    assert wait().until(
        lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="stVegaLiteChart"]')
    ), "no chart of the results by year"

    year_from = driver.find_element(By.CSS_SELECTOR, 'input[aria-label="From year"]')
    year_from.send_keys(str(YEAR_FROM), Keys.ENTER)
    narrowed = wait().until(lambda _: results(True))
    years = [int(c.get_attribute("data-year") or 0) for c in narrowed]
    assert years and min(years) >= YEAR_FROM, years
    driver.save_screenshot(str(ARTIFACTS / "browser-search.png"))
    assert driver.execute_script("return window.__pwned") is None
    # Recorded, not asserted: a fast machine may finish the answer between two polls.
    (ARTIFACTS / "browser-stream.txt").write_text(f"cursor seen while streaming: {cursor_seen}\n")


def test_researcher_screens_by_design_follows_similar_articles_and_sees_whats_new(
    app: App, browser: tuple
) -> None:
    driver, _ = browser
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        _screening_session(driver, app)
    except Exception:
        driver.save_screenshot(str(ARTIFACTS / "browser-failure-screening.png"))
        raise


def _screening_session(driver: Any, app: App) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec

    from indexing.evidence_level import label

    page = Page(driver)
    wait, main_text, cards, results = page.wait, page.main_text, page.cards, page.results

    def levels(shown: list) -> list[str]:
        return [
            c.find_element(By.CSS_SELECTOR, ".pubmed-rag-evidence-level").get_attribute(
                "data-level"
            )
            or ""
            for c in shown
        ]

    # -- Search, then keep one study design: every card shows its badge ---------------------
    driver.get(f"{app.url}/search")
    terms = wait(START_TIMEOUT_S).until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, 'input[aria-label="Search terms"]'))
    )
    terms.send_keys("proton pump inhibitor", Keys.ENTER)
    every = levels(wait(ANSWER_TIMEOUT_S).until(lambda _: results(False)))
    assert all(every), every  # a design badge (or "other") on every source
    design = max(set(every), key=every.count)
    chooser = next(
        box
        for box in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stMultiSelect"]')
        if box.text.startswith("Study design")
    )
    picker = chooser.find_element(By.CSS_SELECTOR, "input")
    picker.click()
    picker.send_keys(label(design), Keys.ENTER)
    picker.send_keys(Keys.ESCAPE)
    narrowed = levels(wait().until(lambda _: results(True)))
    assert narrowed and set(narrowed) == {design}, (design, narrowed)
    if len(set(every)) > 1:
        assert len(narrowed) < len(every)

    # -- A source's similar articles: neighbours, never the article itself -------------------
    first = cards()[0]
    pmid = first.get_attribute("data-pmid")
    button = next(
        b
        for b in driver.find_elements(By.CSS_SELECTOR, "button")
        if b.text.strip().endswith("Similar articles")
    )
    button.click()
    # The design filter still applies: similar articles honour the sidebar's filters.
    similar = wait(ANSWER_TIMEOUT_S).until(lambda _: results(True, f"Similar to PMID {pmid}"))
    assert set(levels(similar)) == {design}
    assert pmid not in [c.get_attribute("data-pmid") for c in similar]
    back = next(
        b for b in driver.find_elements(By.CSS_SELECTOR, "button") if "Back to search" in b.text
    )
    back.click()
    wait().until(lambda _: "Similar to PMID" not in main_text())

    # -- Watch a search, publish an update with new records, read What's new -------------------
    watched = "cancer risk"
    added = subprocess.run(
        [sys.executable, "-m", "rag", "watch", "add", watched],
        cwd=ROOT,
        env=app.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    present = {c.get_attribute("data-pmid") for c in cards()}
    new_files = [
        p for p in sorted(METAPUB_PMIDS.glob("*.xml")) if p.stem not in present | set(REAL_PMIDS)
    ][:25]
    update = subprocess.run(
        [sys.executable, "-m", "indexing", "update", *(f"--xml={p}" for p in new_files)],
        cwd=ROOT,
        env=app.env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert update.returncode == 0, update.stderr
    new_pmids = {p.stem for p in new_files}

    driver.find_element(
        By.CSS_SELECTOR, '[data-testid="stSidebarNav"] a[href$="/whats_new"]'
    ).click()

    def news(_: object) -> list[str]:
        text = main_text()
        return [pmid for pmid in new_pmids if pmid in text] if watched in text else []

    shown = wait().until(news)
    assert shown, main_text()
    assert "v000002" in main_text()  # checked against the version the update published
    for link in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stMain"] a'):
        href = link.get_attribute("href") or ""
        assert href.startswith(("https://pubmed.ncbi.nlm.nih.gov/", app.url)), href
    driver.save_screenshot(str(ARTIFACTS / "browser-whats-new.png"))
    assert driver.execute_script("return window.__pwned") is None
