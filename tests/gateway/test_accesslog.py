"""The access log's line is exactly what ``json.dumps`` writes for the same fields (it is
built by hand for speed), whatever the values hold."""

from __future__ import annotations

import asyncio
import io
import json

import pytest

from gateway.accesslog import BatchedLines, access_line

_NAMES = (
    "ts",
    "client",
    "method",
    "path",
    "status",
    "bytes",
    "ms",
    "tls",
    "resumed",
    "user_id",
    "serial",
)

_CASES = [
    (
        "2026-12-03T15:00:00.007Z",
        "127.0.0.1",
        "GET",
        "/echo",
        200,
        512,
        1.25,
        "TLSv1.3",
        False,
        "user0001",
        "1a2b",
    ),
    ("2026-12-03T15:00:00.999Z", "::1", "POST", "/申請/添付", 413, 0, 0.0, None, True, None, None),
    (
        "t",
        "10.0.0.1",
        "GET",
        '/a"b\\c\x00\x1f\x7f\u2028\ud7ff',
        500,
        10**12,
        123456.78,
        "TLSv1.2",
        False,
        'id"\n',
        "ff",
    ),
    ("t", "", "HEAD", "/", 304, 0, 1e-05, "", False, "", ""),
]


@pytest.mark.parametrize("values", _CASES)
def test_the_line_is_what_json_dumps_writes(values: tuple[object, ...]) -> None:
    line = access_line(*values)  # type: ignore[arg-type]
    assert line == json.dumps(dict(zip(_NAMES, values, strict=True)), ensure_ascii=False)
    assert "\n" not in line  # one request, one line


def test_lines_are_written_in_one_batch_per_turn_of_the_loop() -> None:
    stream = io.StringIO()
    lines = BatchedLines(stream)

    async def log_three() -> str:
        for number in range(3):
            lines(f"line {number}")
        written = stream.getvalue()
        await asyncio.sleep(0)
        return written

    assert asyncio.run(log_three()) == ""
    assert stream.getvalue() == "line 0\nline 1\nline 2\n"
