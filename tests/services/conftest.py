"""The services assembled on the in-memory ports of tests/fakes.py: no Redis, SQL or
network, so their rules are tested in milliseconds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509

from ca_service.adapters.mail import templates
from ca_service.domain.crl_schedule import CrlSchedule
from ca_service.domain.profiles import Caller, ClientCertificateProfile, Role
from ca_service.domain.records import CertificateRecord, RevocationRecord
from ca_service.pki.certificates import ClientCertificateFactory
from ca_service.pki.hierarchy import CaPair, create_pair
from ca_service.pki.keys import KeyAlgorithm
from ca_service.pki.signer import SoftwareSigner
from ca_service.services.account_issuance import AccountIssuance, IssuanceOrder
from ca_service.services.accounts import AccountService
from ca_service.services.crl import CrlPublisher
from ca_service.services.email_verification import EmailVerificationService
from ca_service.services.enrollment import EnrollmentService
from ca_service.services.issuance import IssuanceService
from ca_service.services.notices import CertificateNotices
from ca_service.services.revocation import RevocationService
from tests.fakes import FakeClock, MemoryStores
from tests.support import EXAMPLE_CA, make_csr

NOW = datetime(2026, 11, 21, 1, 0, 0, tzinfo=UTC)
# What the users of these tests choose at their initial registration (SPEC A3).
CHOSEN_PASSWORD = "Own-Pass1!"
OPERATOR = Caller(Role.OPERATOR, "operator")
PROFILE = ClientCertificateProfile(
    crl_url="http://ca.example.jp/crl/issuing.crl",
    ocsp_url="http://ca.example.jp/ocsp",
    ca_issuers_url="http://ca.example.jp/ca/issuing.der",
    user_uri_prefix="urn:example:user:",
    delta_crl_url="http://ca.example.jp/crl/issuing-delta.crl",
)


@pytest.fixture(scope="session")
def ca_pair() -> CaPair:
    return create_pair(KeyAlgorithm.EC_P256, EXAMPLE_CA, NOW - timedelta(days=1))


@dataclass
class Services:
    clock: FakeClock
    stores: MemoryStores
    issuance: IssuanceService
    account_issuance: AccountIssuance
    accounts: AccountService
    enrollment: EnrollmentService
    revocation: RevocationService
    notices: CertificateNotices
    publisher: CrlPublisher
    issuing: x509.Certificate
    email: EmailVerificationService

    async def new_user(
        self, user_id: str = "taro0001", organization: str = "テスト株式会社"
    ) -> tuple[str, str]:
        """A general user of a new organisation, made by the operator through the account
        service, that has replaced its given password with its own (SPEC A5); returns the
        organisation ID and the user's login password."""
        made, _ = await self.accounts.create_organization(organization)
        _, secret = await self.accounts.create_user(
            acting_user_id="",
            organization_id=made.organization_id,
            user_id=user_id,
            email=f"{user_id}@example.jp",
        )
        await self.enrollment.change_password(user_id, secret.value, CHOSEN_PASSWORD)
        return made.organization_id, CHOSEN_PASSWORD

    async def issued(self, user_id: str = "taro0001") -> CertificateRecord:
        """A new certificate of ``user_id`` (with an organisation of its own, made on first
        use), signed on the operator's order past the renewal window, so that a test may
        ask for as many as it wants."""
        if await self.stores.accounts.account(user_id) is None:
            await self.new_user(user_id, f"組織 {user_id}")
        order = IssuanceOrder(user_id, OPERATOR, override_renewal_window=True)
        return await self.account_issuance.sign_csr(make_csr(), order)

    async def revoke(
        self,
        *,
        serial: int | None = None,
        user_id: str | None = None,
        reason_name: str = "",
        invalidity_date: datetime | None = None,
        actor: str = "operator",
    ) -> list[RevocationRecord]:
        """:meth:`RevocationService.revoke` of one certificate (``serial``) or of every valid
        one of ``user_id``, by the operator with no reason or invalidity date unless given."""
        return await self.revocation.revoke(
            serial=serial,
            user_id=user_id,
            reason_name=reason_name,
            invalidity_date=invalidity_date,
            actor=actor,
        )


@pytest.fixture
def services(ca_pair: CaPair) -> Services:
    clock = FakeClock(NOW)
    stores = MemoryStores()
    issuing = x509.load_der_x509_certificate(ca_pair.issuing.certificate_der)
    root = x509.load_der_x509_certificate(ca_pair.root.certificate_der)
    issuance = IssuanceService(
        factory=ClientCertificateFactory(
            SoftwareSigner(ca_pair.issuing_key),
            issuer_name=ca_pair.issuing.subject,
            issuer_key_id=ca_pair.issuing.key_id,
            profile=PROFILE,
        ),
        store=stores.certificates,
        clock=clock,
        chain=(issuing, root),
        pkcs12_kdf_rounds=1000,
    )
    return Services(
        clock=clock,
        stores=stores,
        issuance=issuance,
        account_issuance=AccountIssuance(
            accounts=stores.accounts,
            certificates=stores.certificates,
            issuance=issuance,
            clock=clock,
        ),
        accounts=AccountService(
            accounts=stores.accounts,
            lockouts=stores.lockouts,
            passwords=stores.passwords,
            templates=templates,
            clock=clock,
            user_changed=stores.feed.publish_user_change,
            certificates=stores.certificates,
        ),
        enrollment=EnrollmentService(
            accounts=stores.accounts,
            certificates=stores.certificates,
            lockouts=stores.lockouts,
            codes_store=stores.codes,
            passwords=stores.passwords,
            templates=templates,
            issuance=issuance,
            clock=clock,
            code_key=b"k" * 32,
            user_changed=stores.feed.publish_user_change,
            resends=stores.resends,
        ),
        revocation=RevocationService(
            store=stores.revocations,
            feed=stores.feed,
            clock=clock,
            poll_interval=0.05,
            heartbeat_interval=0.05,
        ),
        notices=CertificateNotices(store=stores.notices, templates=templates),
        publisher=CrlPublisher(
            store=stores.crls,
            signer=SoftwareSigner(ca_pair.issuing_key),
            issuer_name=ca_pair.issuing.subject,
            issuer_key_id=ca_pair.issuing.key_id,
            clock=clock,
            schedule=CrlSchedule(),
            freshest_crl_url=PROFILE.delta_crl_url,
        ),
        issuing=issuing,
        email=EmailVerificationService(
            links=stores.email_links,
            accounts=stores.accounts,
            templates=templates,
            clock=clock,
            user_changed=stores.feed.publish_user_change,
        ),
    )
