"""Issuance for named users (SPEC C1, C2, F1) on in-memory ports: the account decides the
subject, the renewal window applies unless overridden, and the audit names the caller."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from ca_service.domain.profiles import Caller, Role
from ca_service.domain.records import KeySource
from ca_service.domain.validity import renewal_opens_at, validity_for
from ca_service.errors import AlreadyExists, CAError
from ca_service.services.account_issuance import IssuanceOrder
from tests.services.conftest import PROFILE, Services
from tests.support import assert_client_certificate, make_csr

OPERATOR = Caller(Role.OPERATOR, "operator")


async def test_the_account_names_the_subject_and_the_audit_names_the_caller(
    services: Services,
) -> None:
    organization_id, _ = await services.new_user()
    record = await services.account_issuance.sign_csr(
        make_csr("CN=someone else,O=Other"),
        IssuanceOrder("taro0001", Caller(Role.SERVICE, "billing"), organization_id),
    )
    certificate = x509.load_der_x509_certificate(record.der)
    assert_client_certificate(
        certificate, "taro0001", "テスト株式会社", PROFILE.user_uri_prefix + "taro0001"
    )
    validity = validity_for(services.clock.now().replace(microsecond=0))
    assert (record.not_before, record.not_after) == (validity.not_before, validity.not_after)
    assert await services.stores.certificates.by_serial(record.serial) == record
    (entry,) = [e for e in services.stores.journal.audit if e.action == "issue"]
    assert entry.actor == "service:billing"
    assert entry.details["renewal_window"] == "open"
    assert entry.details["serial"] == record.serial_hex


@pytest.mark.parametrize(
    ("order", "reason"),
    [
        (IssuanceOrder("nobody01", OPERATOR), "USER_NOT_FOUND"),
        (IssuanceOrder("taro0001", OPERATOR, "Other Org"), "ORGANIZATION_MISMATCH"),
        (IssuanceOrder("x", OPERATOR), "INVALID_USER_ID"),
    ],
)
async def test_orders_the_account_does_not_allow_are_refused(
    services: Services, order: IssuanceOrder, reason: str
) -> None:
    await services.new_user()
    with pytest.raises(CAError) as caught:
        await services.account_issuance.sign_csr(make_csr(), order)
    assert caught.value.reason == reason
    assert not services.stores.certificates.records


async def test_a_blocked_account_gets_nothing(services: Services) -> None:
    await services.new_user()
    now = services.clock.now()
    await services.stores.accounts.set_blocked("taro0001", now, now, [], [])
    with pytest.raises(CAError) as caught:
        await services.account_issuance.sign_csr(make_csr(), IssuanceOrder("taro0001", OPERATOR))
    assert caught.value.reason == "BLOCKED"


async def test_renewal_window_applies_unless_overridden(services: Services) -> None:
    await services.new_user()
    order = IssuanceOrder("taro0001", OPERATOR)
    first = await services.account_issuance.sign_csr(make_csr(), order)
    with pytest.raises(CAError) as caught:
        await services.account_issuance.sign_csr(make_csr(), order)
    assert caught.value.reason == "ALREADY_ISSUED"
    opens = renewal_opens_at(first.not_after)
    assert caught.value.metadata["renewal_opens_at"] == opens.isoformat()

    override = IssuanceOrder("taro0001", OPERATOR, override_renewal_window=True)
    await services.account_issuance.sign_csr(make_csr(), override)
    services.clock.current = opens
    await services.account_issuance.sign_csr(make_csr(), order)
    issues = [e for e in services.stores.journal.audit if e.action == "issue"]
    assert [e.details["renewal_window"] for e in issues] == ["open", "overridden", "open"]


async def test_server_key_comes_in_a_pkcs12_under_the_password(services: Services) -> None:
    await services.new_user()
    issued = await services.account_issuance.issue_pkcs12(
        "Pkcs12-pass!", IssuanceOrder("taro0001", OPERATOR)
    )
    assert issued.record.key_source is KeySource.SERVER
    loaded = pkcs12.load_pkcs12(issued.pkcs12, b"Pkcs12-pass!")
    assert loaded.cert is not None and loaded.key is not None
    assert loaded.cert.certificate.serial_number == issued.record.serial
    assert issued.file_name.startswith("taro0001") and issued.file_name.endswith(".p12")


async def test_a_serial_collision_signs_again(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    await services.new_user()
    store = services.stores.certificates
    real = store.record_issued
    collisions: list[object] = []

    async def collide_once(*args: object, **kwargs: object) -> None:
        if not collisions:
            collisions.append(args[0])
            raise AlreadyExists("serial taken")
        await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "record_issued", collide_once)
    record = await services.account_issuance.sign_csr(
        make_csr(), IssuanceOrder("taro0001", OPERATOR)
    )
    assert len(collisions) == 1 and collisions[0] != record
    assert list(store.records) == [record.serial]


async def test_lookups_by_serial_fingerprint_and_user(services: Services) -> None:
    await services.new_user()
    record = await services.account_issuance.sign_csr(
        make_csr(), IssuanceOrder("taro0001", OPERATOR)
    )
    assert await services.issuance.by_serial(record.serial_hex) == record
    assert await services.issuance.by_fingerprint(record.fingerprint_sha256.upper()) == record
    assert list(await services.issuance.for_user("taro0001")) == [record]
    with pytest.raises(CAError) as caught:
        await services.issuance.by_serial("0bad")
    assert caught.value.reason == "CERTIFICATE_NOT_FOUND"
    services.clock.advance(timedelta(days=400))
    assert await services.issuance.by_serial(record.serial_hex) == record
