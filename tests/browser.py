"""What every screen test in a real browser shares: Playwright driving Debian's chromium
(the fixtures ``driver``, ``browser`` and ``anonymous``: import them into the test module),
browser contexts as a Japanese user sees the gateway (optionally presenting a client
certificate), and screenshots kept in ``artifacts/screenshots/`` — each checked with
axe-core (the pinned copy PyPI's axe-playwright-python ships), which must find no serious or
critical accessibility violation (its findings are kept beside the screenshot)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from axe_playwright_python.base import AXE_FILE_PATH
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

__all__ = [
    "SCREENSHOTS",
    "anonymous",
    "assert_accessible",
    "browser",
    "client_certificate",
    "driver",
    "new_context",
    "screenshot_dir",
    "shot",
]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
TIMEOUT_MS = 15_000
AXE_SCRIPT = AXE_FILE_PATH.read_text(encoding="utf-8")
# What fails the test; "moderate" and "minor" findings are kept in the report only.
BLOCKING_IMPACTS = ("serious", "critical")


@pytest.fixture(scope="module")
def driver() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is not installed (Debian package chromium)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must run the browser test")
        pytest.skip(message)
    with sync_playwright() as started:
        yield started


@pytest.fixture(scope="module")
def browser(driver: Playwright) -> Iterator[Browser]:
    launched = driver.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
    )
    yield launched
    launched.close()


@pytest.fixture
def anonymous(browser: Browser) -> Iterator[BrowserContext]:
    """A browser context without a client certificate (a user before issuance)."""
    context = new_context(browser)
    yield context
    context.close()


def screenshot_dir(subdirectory: str = "", prefix: str = "") -> Path:
    """``artifacts/screenshots/<subdirectory>``, without the screens (and axe-core reports)
    named ``<prefix>…`` an earlier run left there."""
    directory = SCREENSHOTS / subdirectory
    directory.mkdir(parents=True, exist_ok=True)
    for old in (*directory.glob(f"{prefix}*.png"), *directory.glob(f"{prefix}*.axe.json")):
        old.unlink()
    return directory


def client_certificate(directory: Path, origin: str) -> list[dict[str, str]]:
    """``client_certificates`` for ``new_context``: cert.pem and key.pem of ``directory``,
    presented to ``origin``."""
    return [
        {
            "origin": origin,
            "certPath": str(directory / "cert.pem"),
            "keyPath": str(directory / "key.pem"),
        }
    ]


def new_context(
    browser: Browser, *, timeout_ms: int = TIMEOUT_MS, **options: object
) -> BrowserContext:
    """A context in Japanese, in Japan's time zone; ``options`` go to ``new_context``
    (``client_certificates=…`` for a user with a certificate)."""
    # The gateway's server certificate is from our own CA, which chromium does not trust.
    context = browser.new_context(
        ignore_https_errors=True,
        locale="ja-JP",
        timezone_id="Asia/Tokyo",
        viewport={"width": 1100, "height": 900},
        accept_downloads=True,
        **options,  # type: ignore[arg-type]
    )
    context.set_default_timeout(timeout_ms)
    return context


def shot(page: Page, directory: Path, name: str) -> None:
    """Keeps a screenshot of the screen and checks it with axe-core (WCAG 9)."""
    page.screenshot(path=str(directory / f"{name}.png"), full_page=True)
    assert_accessible(page, directory, name)


def assert_accessible(page: Page, directory: Path, name: str) -> None:
    """axe-core, injected into the page as it is, finds no serious or critical violation.

    Injected through the DevTools protocol (page.evaluate), which the page's CSP does not
    govern; the screens themselves load no script but their own."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE_SCRIPT)
    results = page.evaluate(
        "() => axe.run(document, {resultTypes: ['violations'], reporter: 'v2'})"
    )
    violations = results["violations"]
    assert len(results["passes"]) >= 10, "axe-core checked next to nothing"
    (directory / f"{name}.axe.json").write_text(
        json.dumps(
            {"url": page.url, "axe": results["testEngine"]["version"], "violations": violations},
            ensure_ascii=False,
            indent=1,
        ),
        encoding="utf-8",
    )
    blocking = [
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(" ".join(node["target"]) for node in v["nodes"])
        for v in violations
        if v["impact"] in BLOCKING_IMPACTS
    ]
    assert not blocking, f"axe-core on {name} ({page.url}):\n" + "\n".join(blocking)
