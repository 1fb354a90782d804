"""asn1crypto's lazily built class tables are ready before threads use them: eight threads
encrypting CA keys at once (as ``ca-service init`` does) in fresh processes, with the
interpreter switching threads as often as it can. Without the preparation at import, one
process in ten to one in five failed ("invalid literal for int() with base 10: 'sha1'")."""

from __future__ import annotations

import subprocess
import sys

_RACE = """
import sys, threading
sys.setswitchinterval(1e-6)
from cryptography.hazmat.primitives.asymmetric import ec
from ca_service.pki import keys
keys.KEY_KDF_ITERATIONS = 1000
private = [ec.generate_private_key(ec.SECP256R1()) for _ in range(8)]
barrier, errors = threading.Barrier(8), []
def encrypt(key):
    barrier.wait()
    try:
        keys.encrypt_private_key(key, b"passphrase")
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=encrypt, args=(key,)) for key in private]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(errors[0] if errors else "ok")
"""


def test_first_uses_in_parallel_threads_do_not_race() -> None:
    # One process after the other: many at once on a few cores interleave their threads
    # less (without the preparation, 1 in 10 to 1 in 5 failed this way, none of 24 run at once).
    answers = [
        subprocess.run(
            [sys.executable, "-c", _RACE], capture_output=True, text=True, timeout=120
        ).stdout.strip()
        for _ in range(40)
    ]
    assert answers == ["ok"] * len(answers), [a for a in answers if a != "ok"][:3]
