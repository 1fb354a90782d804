"""Receiving the re-submission form as it streams in: files to disk with their SHA-256,
fields in memory, the limits enforced while reading, nothing left behind on a refusal."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.portal.errors import MalformedUpload, UploadTooLarge
from gateway.portal.uploads import receive_form
from tests.portal.multipart import encode


def _left(directory: Path) -> list[Path]:
    return list(directory.iterdir())


async def _pieces(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def _receive(
    body: bytes,
    content_type: str,
    directory: Path,
    *,
    piece: int = 65536,
    files: int = 5,
    limit: int = 10 * 1024 * 1024,
) -> object:
    return await receive_form(
        _pieces(body, piece), content_type, directory, max_files=files, max_bytes=limit
    )


async def test_fields_and_files_arrive_with_their_digests(tmp_path: Path) -> None:
    one, two = b"\x89PNG" + bytes(range(256)) * 300, "書類".encode() * 1000
    content_type, body = encode(
        [("csrf", "token"), ("member_number", "123456789"), ("action", "confirm")],
        [
            ("files", "申込書.png", one, "image/png"),
            ("files", r"C:\scan\b.pdf", two, "application/pdf"),
            ("files", "", b"", "application/octet-stream"),
        ],
    )
    form = await receive_form(
        _pieces(body, 7), content_type, tmp_path, max_files=5, max_bytes=10_000_000
    )
    assert form.fields == {"csrf": "token", "member_number": "123456789", "action": "confirm"}
    assert [(f.name, f.content_type, f.size) for f in form.files] == [
        ("申込書.png", "image/png", len(one)),
        ("b.pdf", "application/pdf", len(two)),
    ]
    for received, content in zip(form.files, (one, two), strict=True):
        assert received.sha256 == hashlib.sha256(content).hexdigest()
        assert received.path.read_bytes() == content
        assert received.path.parent == tmp_path


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(content=st.binary(min_size=1, max_size=5000), piece=st.integers(1, 700))
async def test_any_split_of_the_body_gives_the_same_file(
    tmp_path: Path, content: bytes, piece: int
) -> None:
    content_type, body = encode(
        [("a", "b")], [("files", "x.bin", content, "application/octet-stream")]
    )
    form = await receive_form(
        _pieces(body, piece), content_type, tmp_path, max_files=5, max_bytes=10_000
    )
    (received,) = form.files
    assert received.path.read_bytes() == content
    assert received.sha256 == hashlib.sha256(content).hexdigest()
    received.path.unlink()


async def test_one_byte_over_the_allowance_is_refused_and_nothing_stays(tmp_path: Path) -> None:
    limit = 100_000
    content_type, body = encode(
        [("csrf", "t")],
        [
            ("files", "a.jpg", b"a" * 60_000, "image/jpeg"),
            ("files", "b.jpg", b"b" * 40_001, "image/jpeg"),
        ],
    )
    read: list[int] = []

    async def counted() -> AsyncIterator[bytes]:
        async for piece in _pieces(body, 1000):
            read.append(len(piece))
            yield piece

    with pytest.raises(UploadTooLarge) as refused:
        await receive_form(counted(), content_type, tmp_path, max_files=5, max_bytes=limit)
    assert refused.value.fields == {"csrf": "t"}  # what came before the files is kept
    assert _left(tmp_path) == []
    # Refused while reading: with more behind, the rest of the body is never asked for.
    content_type, body = encode(
        [], [("files", "a.jpg", b"a" * 100_001, "image/jpeg"), ("files", "c", b"c" * 90_000, "x/y")]
    )
    read.clear()
    with pytest.raises(UploadTooLarge):
        await receive_form(counted(), content_type, tmp_path, max_files=5, max_bytes=limit)
    assert sum(read) < 102_000 < len(body)
    assert _left(tmp_path) == []
    content_type, exact = encode(
        [("csrf", "t")],
        [
            ("files", "a.jpg", b"a" * 60_000, "image/jpeg"),
            ("files", "b.jpg", b"b" * 40_000, "image/jpeg"),
        ],
    )
    form = await receive_form(
        _pieces(exact, 1000), content_type, tmp_path, max_files=5, max_bytes=limit
    )
    assert sum(f.size for f in form.files) == limit


async def test_more_files_than_allowed_are_refused_at_the_extra_part(tmp_path: Path) -> None:
    content_type, body = encode(
        [], [("files", f"{i}.png", b"x" * 10, "image/png") for i in range(3)]
    )
    with pytest.raises(UploadTooLarge) as refused:
        await receive_form(_pieces(body, 50), content_type, tmp_path, max_files=2, max_bytes=1000)
    assert refused.value.fields == {}
    assert _left(tmp_path) == []


@pytest.mark.parametrize(
    "mangle",
    [
        lambda body: body[:-10],  # cut before the closing boundary
        lambda body: body.replace(
            b"Content-Disposition: form-data", b"Content-Disposition: attachment", 1
        ),
        lambda body: b"garbage" + body,
    ],
)
async def test_broken_bodies_are_malformed_and_leave_nothing(
    tmp_path: Path, mangle: object
) -> None:
    content_type, body = encode([("csrf", "t")], [("files", "a.png", b"y" * 5000, "image/png")])
    with pytest.raises(MalformedUpload):
        await receive_form(
            _pieces(mangle(body), 333), content_type, tmp_path, max_files=5, max_bytes=10**6
        )  # type: ignore[operator]
    assert _left(tmp_path) == []


async def test_an_empty_file_and_a_wrong_type_are_malformed(tmp_path: Path) -> None:
    content_type, body = encode([], [("files", "empty.png", b"", "image/png")])
    with pytest.raises(MalformedUpload):
        await receive_form(_pieces(body, 100), content_type, tmp_path, max_files=5, max_bytes=100)
    with pytest.raises(MalformedUpload):
        await receive_form(
            _pieces(b"a=b", 100),
            "application/x-www-form-urlencoded",
            tmp_path,
            max_files=5,
            max_bytes=100,
        )
    assert _left(tmp_path) == []


async def test_too_many_fields_or_a_long_field_are_malformed(tmp_path: Path) -> None:
    content_type, body = encode([(f"f{i}", "v") for i in range(40)])
    with pytest.raises(MalformedUpload):
        await receive_form(_pieces(body, 100), content_type, tmp_path, max_files=5, max_bytes=100)
    content_type, body = encode([("member_number", "9" * 10_000)])
    with pytest.raises(MalformedUpload):
        await receive_form(_pieces(body, 100), content_type, tmp_path, max_files=5, max_bytes=100)
