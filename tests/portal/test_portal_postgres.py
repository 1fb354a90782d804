"""The portal on PostgreSQL (its default is SQLite): the whole procedure, one submission
for a double submit, through the real gateway and CA."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.gateway.curl import Client, csrf_token
from tests.portal.portal_stack import MOUNT, PortalStack, start_portal_stack
from tests.portal.test_portal_flow import RECEIPT, _file, _upload, _verified
from tests.smtp_sink import SmtpSink

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
CARD = MOUNT + "card/"


@pytest.fixture
def stack(
    tmp_path: Path, redis_server: str, smtp: SmtpSink, postgres_url: str
) -> Iterator[PortalStack]:
    stack = start_portal_stack(tmp_path / "stack", redis_server, smtp, database_url=postgres_url)
    yield stack
    stack.stop()


def test_the_procedure_on_postgresql(stack: PortalStack, postgres_url: str, tmp_path: Path) -> None:
    address = "pg@test.example.jp"
    client: Client = _verified(stack, tmp_path, address, stack.card("pg"))
    _, _, page = client(CARD)
    client.post(CARD + "identity", csrf=csrf_token(page))
    assert _upload(client, [_file(tmp_path, "a.png", 5000)])[0] == 303
    assert _upload(client, [_file(tmp_path, "b.png", 6000)])[0] == 303
    status, headers, _ = _upload(client, [], action="confirm", receipt_number=RECEIPT)
    assert status == 303 and headers["location"] == CARD + "confirm"
    _, _, page = client(CARD + "confirm")
    token = re.search(r'name="token" value="([^"]+)"', page)
    assert token
    fields = {"csrf": csrf_token(page), "token": token.group(1)}
    first, again = client.post(CARD + "submit", **fields), client.post(CARD + "submit", **fields)
    assert first[1]["location"] == again[1]["location"]
    status, _, page = client(first[1]["location"])
    assert status == 200 and "添付資料再提出完了" in page
    receipt = re.search(r'id="receipt-number">(S0101-\d{14}-\d{5})<', page)
    assert receipt
    assert receipt.group(1) in stack.wait_for_completion(address).get_body(("plain",)).get_content()  # type: ignore[union-attr]
    with psycopg.connect(postgres_url) as connection:
        rows = connection.execute(
            "SELECT s.receipt_number, COUNT(f.ordinal) FROM portal_submissions s"
            " JOIN portal_submission_files f ON f.receipt_number = s.receipt_number"
            " GROUP BY s.receipt_number"
        ).fetchall()
    assert rows == [(receipt.group(1), 2)]
