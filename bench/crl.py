#!/usr/bin/env python3
"""CRL publication time: ``build_crl`` over N pre-encoded entries, with cryptography's
``CertificateRevocationListBuilder`` as the peer.

Encoding an entry (``encode_entry``) happens once per revocation in production, and the
store keeps the DER, so it is timed separately from building the CRL (join + sign). The
peer is quadratic in the number of entries (every ``add_revoked_certificate`` copies the
builder's list), so it runs at 10,000 and 30,000 entries only; ours runs at the same sizes
for comparison and at 1,000,000 for the target.

    .venv/bin/python bench/crl.py [--entries 1000000] [--runs 5] [--algorithm ec-p256]
        [--peer-sizes 10000,30000] [--no-verify]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.serialization import Encoding  # noqa: E402

from ca_service.domain.profiles import CaProfile  # noqa: E402
from ca_service.pki.certificates import new_serial  # noqa: E402
from ca_service.pki.crl import Reason, build_crl, encode_entry  # noqa: E402
from ca_service.pki.hierarchy import IssuedCa, create_root  # noqa: E402
from ca_service.pki.keys import CaPrivateKey, KeyAlgorithm, generate_key  # noqa: E402
from ca_service.pki.signer import SoftwareSigner  # noqa: E402

TARGET_ENTRIES = 1_000_000
TARGET_SECONDS = 1.0
NOW = datetime(2026, 11, 21, 1, 0, 0, tzinfo=UTC)
THIS_UPDATE = NOW
NEXT_UPDATE = NOW + timedelta(days=7)
DELTA_URL = "http://crl.ca.example.jp/issuing-delta.crl"
REASONS = [r for r in Reason if r is not Reason.REMOVE_FROM_CRL]
PROFILE = CaProfile(
    organization="Example Bank CA",
    root_common_name="Example Root CA",
    issuing_common_name="Example Issuing CA",
    services_common_name="Example Services CA",
)


class TimingSigner(SoftwareSigner):
    """Records how long each signature takes, to split the build into join and sign."""

    def __init__(self, key: CaPrivateKey) -> None:
        super().__init__(key)
        self.last_sign_seconds = 0.0

    def sign(self, data: bytes) -> bytes:
        started = time.perf_counter()
        signature = super().sign(data)
        self.last_sign_seconds = time.perf_counter() - started
        return signature


def revocations(count: int) -> list[tuple[int, datetime, Reason, datetime | None]]:
    """Realistic serials (16 random octets), a revocation per second back from NOW, every
    reason but removeFromCRL, an invalidity date on every third entry."""
    return [
        (
            new_serial(),
            NOW - timedelta(seconds=count - i),
            REASONS[i % len(REASONS)],
            NOW - timedelta(days=1, seconds=i) if i % 3 == 0 else None,
        )
        for i in range(count)
    ]


def encode(rows: Sequence[tuple[int, datetime, Reason, datetime | None]]) -> list[bytes]:
    return [encode_entry(serial, at, reason, invalid) for serial, at, reason, invalid in rows]


def ours(
    signer: TimingSigner, ca: IssuedCa, entries: Sequence[bytes], runs: int
) -> tuple[float, float, bytes]:
    """Median build seconds, median signing seconds within it, and one CRL."""

    def build() -> bytes:
        return build_crl(
            signer,
            issuer_name=ca.subject,
            issuer_key_id=ca.key_id,
            this_update=THIS_UPDATE,
            next_update=NEXT_UPDATE,
            crl_number=1000,
            entries=entries,
            freshest_crl_url=DELTA_URL,
        )

    totals: list[float] = []
    signing: list[float] = []
    crl = b""
    for _ in range(runs):
        crl = b""  # free the previous CRL before the next build
        started = time.perf_counter()
        crl = build()
        totals.append(time.perf_counter() - started)
        signing.append(signer.last_sign_seconds)
    return statistics.median(totals), statistics.median(signing), crl


def peer(
    key: CaPrivateKey,
    ca: IssuedCa,
    rows: Sequence[tuple[int, datetime, Reason, datetime | None]],
    runs: int,
) -> tuple[float, float, int]:
    """cryptography: seconds to make the RevokedCertificate objects (the per-revocation
    part), median seconds to add them to a builder and sign, and the CRL's size."""
    issuer = x509.load_der_x509_certificate(ca.certificate_der).subject
    started = time.perf_counter()
    revoked = []
    for serial, at, reason, invalid in rows:
        builder = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(at)
        if reason is not Reason.UNSPECIFIED:
            builder = builder.add_extension(
                x509.CRLReason(x509.ReasonFlags[reason.name.lower()]), critical=False
            )
        if invalid is not None:
            builder = builder.add_extension(
                x509.InvalidityDate(invalid.replace(tzinfo=None)), critical=False
            )
        revoked.append(builder.build())
    encode_seconds = time.perf_counter() - started
    hash_algorithm = hashes.SHA256()

    def build() -> bytes:
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer)
            .last_update(THIS_UPDATE)
            .next_update(NEXT_UPDATE)
            .add_extension(x509.AuthorityKeyIdentifier(ca.key_id, None, None), critical=False)
            .add_extension(x509.CRLNumber(1000), critical=False)
            .add_extension(
                x509.FreshestCRL(
                    [
                        x509.DistributionPoint(
                            [x509.UniformResourceIdentifier(DELTA_URL)], None, None, None
                        )
                    ]
                ),
                critical=False,
            )
        )
        for entry in revoked:
            builder = builder.add_revoked_certificate(entry)
        return builder.sign(key, hash_algorithm).public_bytes(Encoding.DER)

    totals = []
    size = 0
    for _ in range(runs):
        started = time.perf_counter()
        size = len(build())
        totals.append(time.perf_counter() - started)
    return encode_seconds, statistics.median(totals), size


def megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=TARGET_ENTRIES)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--algorithm", choices=[a.value for a in KeyAlgorithm], default=KeyAlgorithm.EC_P256.value
    )
    parser.add_argument("--peer-sizes", default="10000,30000")
    parser.add_argument("--no-verify", action="store_true", help="skip parsing the big CRL")
    args = parser.parse_args(argv)

    algorithm = KeyAlgorithm(args.algorithm)
    key = generate_key(algorithm)
    ca = create_root(key, PROFILE, PROFILE.issuing_common_name, NOW, PROFILE.issuing_lifetime)
    signer = TimingSigner(key)
    peer_sizes = [int(size) for size in args.peer_sizes.split(",") if size]
    print(
        f"CA key {algorithm.value}; median of {args.runs} builds; Python {sys.version.split()[0]}"
    )

    rows = revocations(max([args.entries, *peer_sizes]))
    started = time.perf_counter()
    entries = encode(rows[: args.entries])
    encode_seconds = time.perf_counter() - started
    average = sum(map(len, entries)) / max(len(entries), 1)
    print(
        f"encode_entry x {len(entries):,}: {encode_seconds:.2f} s "
        f"({encode_seconds / max(len(entries), 1) * 1e6:.2f} us/entry, {average:.1f} B/entry; "
        "once per revocation, stored)"
    )

    build_seconds, sign_seconds, crl = ours(signer, ca, entries, args.runs)
    print(
        f"ours  build_crl x {len(entries):,}: {build_seconds:.3f} s "
        f"(signing {sign_seconds:.3f} s), {megabytes(len(crl))}"
    )
    if not args.no_verify:
        started = time.perf_counter()
        parsed = x509.load_der_x509_crl(crl)
        public_key = key.public_key()
        assert len(parsed) == len(entries), "entry count differs"
        assert parsed.is_signature_valid(public_key), "signature does not verify"
        print(
            f"      check: cryptography parses {len(parsed):,} entries, signature valid "
            f"({time.perf_counter() - started:.1f} s)"
        )
    del crl
    if args.entries == TARGET_ENTRIES:
        verdict = "MET" if build_seconds < TARGET_SECONDS else "NOT MET"
        print(f"target < 1 s for 1,000,000 entries: {verdict} ({build_seconds:.3f} s)")

    for size in peer_sizes:
        subset = rows[:size]
        small = entries[:size] if size <= len(entries) else encode(subset)
        build_seconds, _, crl = ours(signer, ca, small, args.runs)
        print(f"ours  build_crl x {size:,}: {build_seconds * 1e3:.1f} ms, {megabytes(len(crl))}")
        encode_seconds, peer_seconds, peer_size = peer(key, ca, subset, args.runs)
        print(
            f"peer  cryptography CertificateRevocationListBuilder x {size:,}: "
            f"{peer_seconds * 1e3:.1f} ms (add_revoked_certificate + sign; "
            f"RevokedCertificateBuilder {encode_seconds * 1e3:.0f} ms), {megabytes(peer_size)}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
