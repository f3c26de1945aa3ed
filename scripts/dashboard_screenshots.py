"""Screenshots of the ``/ui`` dashboard for the docs: ``docs/images/dashboard-*.png``.

    .venv/bin/python scripts/dashboard_screenshots.py [--out docs/images]

Builds the demo workspace of the browser test (a dataset from warehouse
rows, a pipeline run, a tiny random model it registered, evaluations, a
drift report), adds a day of synthetic past traffic for the charts, serves
it with auth on, sends real requests with the openai SDK, logs in with an
admin key in headless Chromium (``/usr/bin/chromium``) and saves one PNG
per page.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.dashboard.demo

PAGES = {
    "overview": "/ui",
    "requests": "/ui/requests",
    "request": None,  # the newest request of the faq deployment
    "drift": "/ui/drift",
    "runs": "/ui/runs",
    "evals": "/ui/evals",
}


def _traffic(url: str, key: str) -> None:
    import openai

    client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
    for i in range(12):
        client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": f"Summarise ticket #{i}"}]
        )
    for question in (
        "How do I read a file line by line?",
        "What does <script>alert('x')</script> do in a prompt?",
        "How do I sort a dict by value? Mail me at jane.doe@example.com",
    ):
        client.chat.completions.create(
            model="faq", messages=[{"role": "user", "content": question}], max_tokens=12
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright
    from tests.dashboard.demo import (
        demo_workspace,
        deployments,
        seed_history,
        wait_logged,
        wait_ready,
    )

    from llmline.gateway import build_app
    from llmline.gateway.deployments.api import create_deployment
    from llmline.guard.keys import KeyStore
    from llmline.testing.server import ServerThread

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="llmline-screens-") as tmp:
        demo = demo_workspace(Path(tmp))
        for spec in deployments(demo):
            create_deployment(demo.workspace, spec)
        history = seed_history(demo.workspace)
        admin, _ = KeyStore(demo.workspace.metadata).create("ops", "admin")
        server = ServerThread(build_app(demo.workspace, auth=True)).start()
        try:
            wait_ready(server.url)
            _traffic(server.url, admin)
            wait_logged(demo.workspace, history + 15)
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path="/usr/bin/chromium", args=["--no-sandbox"], headless=True
                )
                page = browser.new_page(viewport={"width": 1360, "height": 900})
                page.goto(server.url + "/ui/login")
                page.screenshot(path=str(args.out / "dashboard-login.png"))
                page.fill("#key", admin)
                page.click("button[type=submit]")
                for name, path in PAGES.items():
                    if path is None:
                        page.goto(server.url + "/ui/requests?deployment=faq")
                        page.locator("a.request-link").first.click()
                    else:
                        page.goto(server.url + path)
                    target = args.out / f"dashboard-{name}.png"
                    page.screenshot(path=str(target), full_page=name != "requests")
                    print(target.relative_to(ROOT) if target.is_relative_to(ROOT) else target)
                browser.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
