"""A throw-away SoftHSM2 token: its own configuration and token directory under a test's
temporary directory (SOFTHSM2_CONF), never the machine's, initialised with softhsm2-util."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
UTIL = "softhsm2-util"


def require_softhsm() -> None:
    """Skips (fails under CI, whose .ci/run installs Debian's softhsm2) without SoftHSM2."""
    if MODULE.exists() and shutil.which(UTIL):
        return
    message = f"SoftHSM2 is not installed ({MODULE}, {UTIL}): apt-get install softhsm2"
    if os.environ.get("CI"):
        pytest.fail(message + "; CI must run the HSM tests")
    pytest.skip(message)


@dataclass(frozen=True)
class SoftHsmToken:
    config: Path
    label: str
    pin: str
    pin_file: Path

    @property
    def env(self) -> dict[str, str]:
        """What a ca-service process needs to use the token."""
        return {
            "SOFTHSM2_CONF": str(self.config),
            "CA_PKCS11_MODULE": str(MODULE),
            "CA_PKCS11_TOKEN": self.label,
            "CA_PKCS11_PIN_FILE": str(self.pin_file),
        }


def make_token(directory: Path, label: str = "ca-test") -> SoftHsmToken:
    """A new initialised token in ``directory``, its user PIN in a 0600 file there."""
    require_softhsm()
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, mode=0o700)
    config = directory / "softhsm2.conf"
    config.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    pin = secrets.token_hex(8)
    pin_file = directory / "pin"
    pin_file.touch(mode=0o600)
    pin_file.write_text(pin + "\n")
    subprocess.run(
        [
            UTIL,
            "--init-token",
            "--free",
            "--label",
            label,
            "--pin",
            pin,
            "--so-pin",
            secrets.token_hex(8),
        ],
        env={**os.environ, "SOFTHSM2_CONF": str(config)},
        check=True,
        capture_output=True,
        timeout=60,
    )
    return SoftHsmToken(config, label, pin, pin_file)
