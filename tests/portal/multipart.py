"""multipart/form-data as a browser sends it, for the tests' requests (the portal's side
parses with python-multipart; this is only the client's encoding)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

__all__ = ["encode"]


def encode(
    fields: Sequence[tuple[str, str]],
    files: Sequence[tuple[str, str, bytes, str]] = (),
) -> tuple[str, bytes]:
    """(Content-Type, body); ``files`` are (field, file name, content, content type)."""
    boundary = "----portaltest" + secrets.token_hex(12)
    parts: list[bytes] = []
    for name, value in fields:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    for name, filename, content, content_type in files:
        parts.append(
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{filename}"\r\nContent-Type: {content_type}\r\n\r\n'
            ).encode()
            + content
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(parts)
