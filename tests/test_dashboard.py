"""``manage --dashboard``: the live page in headless Chromium, in front of real dockerd nodes.

The page is driven as a user sees it (Debian's chromium through its
chromedriver, with selenium): the nodes and their health, a container just
started through the docker CLI with the reason it went where it went, and a
node killed under the page turning Unhealthy without a reload. A screenshot
is saved (``SWARMCTL_DASHBOARD_SCREENSHOT=FILE`` keeps a copy, as the one
the README shows).
"""

from __future__ import annotations

import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import docker as dk
from tests.support.manager import Manager, managing
from tests.support.process import free_port, wait_for

CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(dk.available() is not None, reason=str(dk.available())),
    pytest.mark.skipif(CHROMEDRIVER is None, reason="chromium-driver is not installed (scripts/bootstrap --servers)"),
]

webdriver = pytest.importorskip("selenium.webdriver")
By = pytest.importorskip("selenium.webdriver.common.by").By


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dk.DockerNode]]:
    with dk.running_nodes([dk.DockerNode(f"dnode{n}") for n in (1, 2)], tmp_path_factory.mktemp("image")) as made:
        yield made


@pytest.fixture(scope="module")
def dashboard_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def manager(
    tmp_path_factory: pytest.TempPathFactory, nodes: list[dk.DockerNode], dashboard_port: int
) -> Iterator[Manager]:
    extra = ("--dashboard", f"tcp://127.0.0.1:{dashboard_port}", "--engine-failure-retry", "2")
    with managing(tmp_path_factory.mktemp("manager"), nodes, *extra) as made:
        yield made


@pytest.fixture
def browser() -> Iterator[object]:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,700"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def node_state(driver: object, addr: str) -> str:
    rows = driver.find_elements(By.CSS_SELECTOR, f'tr.node[data-addr="{addr}"]')  # type: ignore[attr-defined]
    return str(rows[0].get_attribute("data-state")) if rows else ""


def container_row(driver: object, name: str) -> object | None:
    found = driver.find_elements(By.CSS_SELECTOR, f'tr[data-container="{name}"]')  # type: ignore[attr-defined]
    return found[0] if found else None


def page_text(driver: object) -> str:
    return str(driver.find_element(By.TAG_NAME, "body").text)  # type: ignore[attr-defined]


def test_the_page_follows_the_cluster_live(
    manager: Manager, nodes: list[dk.DockerNode], dashboard_port: int, browser: object, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{dashboard_port}/"
    with urllib.request.urlopen(url, timeout=10) as answer:
        page = answer.read().decode()
    assert "<script" in page and "http" not in page.split("<script", 1)[1]  # nothing fetched from elsewhere
    browser.get(url)  # type: ignore[attr-defined]
    wait_for(lambda: all(node_state(browser, n.addr) == "Healthy" for n in nodes), 30, "both nodes Healthy")
    text = page_text(browser)
    assert "dnode1" in text and "dnode2" in text

    placed = ("-m", "32m", "-e", "constraint:node==dnode2")
    manager.ok("run", "-d", "--name", "dash-web", *placed, dk.IMAGE, "sleep", "600")
    try:
        wait_for(lambda: container_row(browser, "dash-web") is not None, 30, "the new container on its node")
        wait_for(lambda: "start dnode2/dash-web" in page_text(browser), 30, "its start in the feed")
        row = container_row(browser, "dash-web")
        assert row is not None
        said = str(row.text)  # type: ignore[attr-defined]
        assert "spread: dnode2 ranked 1 of 1 candidate" in said and "constraint ruled out dnode1" in said, said

        nodes[0].kill()
        try:
            wait_for(lambda: node_state(browser, nodes[0].addr) == "Unhealthy", 60, "dnode1 Unhealthy, no reload")
            assert node_state(browser, nodes[1].addr) == "Healthy"
            wait_for(lambda: "node dnode1: lost" in page_text(browser), 30, "the loss in the feed")
            shot = tmp_path / "dashboard.png"
            assert browser.save_screenshot(str(shot))  # type: ignore[attr-defined]
            assert shot.stat().st_size > 10_000
            if keep := os.environ.get("SWARMCTL_DASHBOARD_SCREENSHOT"):
                shutil.copy(shot, keep)
        finally:
            nodes[0].start()
            manager.wait_nodes({"dnode1": "Healthy", "dnode2": "Healthy"})
    finally:
        manager.remove_containers()


def test_state_and_node_answer_json(manager: Manager, nodes: list[dk.DockerNode], dashboard_port: int) -> None:
    import json

    with urllib.request.urlopen(f"http://127.0.0.1:{dashboard_port}/state", timeout=10) as answer:
        state = json.loads(answer.read())
    assert state["cluster"]["nodes"] == 2 and {n["name"] for n in state["nodes"]} == {"dnode1", "dnode2"}
    with urllib.request.urlopen(f"http://127.0.0.1:{dashboard_port}/node?addr={nodes[0].addr}", timeout=10) as answer:
        assert json.loads(answer.read())["addr"] == nodes[0].addr
