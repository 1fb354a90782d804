"""Rendering the screens: Jinja2 templates (autoescaped), the static files, and the headers
every gateway page carries. Every template sees the site's name and the CA's rule figures
(``rules``, with the ``duration`` and ``hours`` filters for its durations)."""

from __future__ import annotations

import mimetypes
from functools import cache
from importlib import resources
from typing import Any

import jinja2

from gateway.accounts import Rules
from gateway.server import Response
from gateway.web.messages import duration_text, hours_text

__all__ = ["PAGE_HEADERS", "Pages", "redirect", "static_file"]

# No third-party assets, no inline script or style, no framing, nothing cached (SPEC E5).
PAGE_HEADERS = (
    ("Content-Type", "text/html; charset=utf-8"),
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
    ("Strict-Transport-Security", "max-age=31536000"),
)


class Pages:
    def __init__(self, site_name: str, rules: Rules) -> None:
        self._environment = jinja2.Environment(
            loader=jinja2.PackageLoader("gateway.web", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self._environment.globals["rules"] = rules
        self._environment.filters["duration"] = duration_text
        self._environment.filters["hours"] = hours_text
        self._site_name = site_name

    def render(
        self,
        template: str,
        *,
        status: int = 200,
        csrf: str = "",
        error: str | None = None,
        notice: str | None = None,
        logged_in_user: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        **context: Any,
    ) -> Response:
        html = self._environment.get_template(template).render(
            site_name=self._site_name,
            csrf=csrf,
            error=error,
            notice=notice,
            logged_in_user=logged_in_user,
            **context,
        )
        return Response(status, [*PAGE_HEADERS, *(headers or [])], html.encode())

    def error(
        self,
        status: int,
        heading: str,
        message: str,
        *,
        back_url: str | None = "/login",
        contact: str | None = None,
        csrf: str = "",
    ) -> Response:
        return self.render(
            "error.html",
            status=status,
            csrf=csrf,
            heading=heading,
            message=message,
            back_url=back_url,
            contact=contact,
        )


def redirect(location: str, headers: list[tuple[str, str]] | None = None) -> Response:
    if any(ord(c) < 0x21 or ord(c) == 0x7F or c == "\\" for c in location):
        location = "/"  # never a header split or a browser-normalised off-site jump
    return Response(303, [("Location", location), ("Cache-Control", "no-store"), *(headers or [])])


@cache
def _static_files() -> dict[str, tuple[bytes, str]]:
    """Every file of ``static/``, read once: a request names one of these or gets 404, and
    no name a client sends ever reaches the file system (a 300-character name used to raise
    ENAMETOOLONG there)."""
    files: dict[str, tuple[bytes, str]] = {}
    for resource in resources.files("gateway.web").joinpath("static").iterdir():
        if not resource.is_file() or resource.name.startswith("."):
            continue
        content_type = mimetypes.guess_type(resource.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type.endswith("javascript"):
            content_type += "; charset=utf-8"
        files[resource.name] = (resource.read_bytes(), content_type)
    return files


def static_file(name: str) -> Response | None:
    found = _static_files().get(name)
    if found is None:
        return None
    body, content_type = found
    return Response(
        200,
        [
            ("Content-Type", content_type),
            ("Cache-Control", "public, max-age=3600"),
            ("X-Content-Type-Options", "nosniff"),
        ],
        body,
    )
