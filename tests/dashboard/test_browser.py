"""The dashboard in a real headless Chromium (Debian's ``/usr/bin/chromium``
driven by Playwright) against a real gateway with auth on: log in with a
viewer key, see the deployments and live metrics of requests just sent
with the openai SDK, open a request (safety, lineage back to the warehouse
query), then the drift, runs and evals pages, and log out.

Chromium missing is a failure, not a skip: ``scripts/install-system-deps.sh``
installs it (``make test`` runs it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from llmline.guard.keys import KeyStore
from llmline.testing.server import ServerThread
from tests.dashboard.demo import RUN_ID, Demo, demo_workspace, deployments, wait_logged, wait_ready

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from llmline.gateway import build_app
    from llmline.gateway.deployments.api import create_deployment

    demo: Demo = demo_workspace(tmp_path_factory.mktemp("dashboard"))
    for spec in deployments(demo):
        create_deployment(demo.workspace, spec)
    keys = KeyStore(demo.workspace.metadata)
    viewer, _ = keys.create("grafana", "viewer")
    caller, _ = keys.create("app", "user")
    server = ServerThread(build_app(demo.workspace, auth=True)).start()
    try:
        wait_ready(server.url)
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=caller, max_retries=0)
        questions = ["How do I reverse a list?", "What is a generator?", "Why use <b>with</b>?"]
        for question in questions:
            client.chat.completions.create(
                model="faq", messages=[{"role": "user", "content": question}], max_tokens=6
            )
        for i in range(5):
            client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": f"hello {i}"}]
            )
        wait_logged(demo.workspace, 8)
        yield {"url": server.url, "viewer": viewer, "demo": demo}
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "install chromium: scripts/install-system-deps.sh"
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True
        )
        yield chromium
        chromium.close()


def test_click_through_the_dashboard(served: dict[str, Any], browser: Any) -> None:
    from playwright.sync_api import expect

    url = served["url"]
    page = browser.new_page()
    page.goto(url + "/ui")
    expect(page).to_have_url(re.compile(r"/ui/login\?next=%2Fui$"))  # no key: the login form
    page.fill("#key", served["viewer"])
    page.click("button[type=submit]")
    expect(page).to_have_url(url + "/ui")

    # Deployments with their split and health, and the requests just sent.
    expect(page.locator("#deployment-faq")).to_contain_text("faq-tiny@1")
    expect(page.locator("#deployment-faq")).to_contain_text("ready")
    chat = page.locator("#deployment-chat")
    expect(chat).to_contain_text("canary")
    expect(chat).to_contain_text("fake:canary")
    expect(chat).to_contain_text("challenger · 10%")
    expect(page.locator("#kpi-requests")).to_have_text("8")
    expect(page.locator("#kpi-errors")).to_have_text("0.0%")
    assert page.locator("svg.chart polyline, svg.chart circle").count() > 0
    expect(page.locator("body")).to_contain_text("latency p50 and p95")

    # A request of the faq deployment: safety, then lineage back to the query.
    page.click("nav >> text=Requests")
    page.select_option("select[name=deployment]", "faq")
    page.click("form.filters button")
    rows = page.locator("table.requests tbody tr")
    expect(rows).to_have_count(3)
    rows.first.locator("a.request-link").click()
    expect(page).to_have_url(re.compile(r"/ui/requests/chatcmpl-"))
    expect(page.locator("#safety")).to_contain_text("allowed")
    expect(page.locator("#safety")).to_contain_text("input")
    expect(page.locator("body")).to_contain_text("Texts are shown to roles that may read requests")
    lineage = page.locator("#lineage svg")
    demo: Demo = served["demo"]
    for node in (f"model:{demo.model}", f"run:{RUN_ID}", f"dataset:{demo.dataset}"):
        expect(lineage.locator(f'g[data-id="{node}"]')).to_have_count(1)
    expect(lineage.locator("g.node-query")).to_contain_text("SELECT")
    expect(lineage.locator("g.node-table")).to_have_count(2)
    # The request's spans from the local trace store, as a waterfall.
    expect(page.locator("#trace table.waterfall")).to_contain_text("backend")

    page.click("nav >> text=Drift")
    expect(page.locator(".drift-status")).to_contain_text("warn")
    expect(page.locator("table")).to_contain_text("prompt embeddings")
    assert page.locator("img.plot").evaluate("img => img.naturalWidth") > 0

    page.click("nav >> text=Runs")
    expect(page.locator(f"#run-{RUN_ID}")).to_contain_text("succeeded")
    expect(page.locator(f"#run-{RUN_ID}")).to_contain_text("cached")

    page.click("nav >> text=Evals")
    comparison = page.locator("section.comparison").first
    expect(comparison).to_contain_text(f"vs {demo.model}")
    expect(comparison.locator("td.better").first).to_be_visible()

    page.click("text=Log out")
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    page.goto(url + "/ui/runs")
    expect(page).to_have_url(re.compile(r"/ui/login\?next=%2Fui%2Fruns$"))
    page.close()
