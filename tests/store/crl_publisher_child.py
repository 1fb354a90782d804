"""A ca-service publisher that dies between serving a base CRL and storing its DER: run by
tests/store/test_crl_crash.py, which SIGKILLs it once it serves the base. Everything is the
real SQL store except that the DER's write never finishes (the kill interrupts it).

    python -m tests.store.crl_publisher_child DATABASE_URL SETUP_JSON SERVED_DER_PATH

SETUP_JSON holds the issuing CA's key (PEM), name and key ID (hex); the base served is
written to SERVED_DER_PATH and its number printed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives.serialization import load_pem_private_key

from ca_service.adapters.sql.crls import SqlCrlStore
from ca_service.adapters.sql.database import open_database
from ca_service.domain.crl_schedule import CrlSchedule
from ca_service.domain.records import CrlKind, PublishedCrl
from ca_service.pki.signer import SoftwareSigner
from ca_service.services.crl import CrlPublisher
from ca_service.shared.clock import SystemClock


class _DiesBeforeTheWriteLands(SqlCrlStore):
    async def store_base(self, base: PublishedCrl) -> bool:
        await asyncio.Event().wait()  # the SIGKILL comes first
        return False


async def main(url: str, setup: dict[str, str], served_path: Path) -> None:
    key = load_pem_private_key(setup["key_pem"].encode(), None)
    publisher = CrlPublisher(
        store=_DiesBeforeTheWriteLands(open_database(url, readers=1)),
        signer=SoftwareSigner(key),  # type: ignore[arg-type]
        issuer_name=bytes.fromhex(setup["issuer_name"]),
        issuer_key_id=bytes.fromhex(setup["issuer_key_id"]),
        clock=SystemClock(),
        schedule=CrlSchedule(),
    )
    await publisher.refresh()
    served = publisher.current[CrlKind.BASE]
    # What it serves, for the test to compare; then it stays until it is killed.
    await asyncio.to_thread(served_path.write_bytes, served.der)
    print(served.number, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], json.loads(Path(sys.argv[2]).read_text()), Path(sys.argv[3])))
