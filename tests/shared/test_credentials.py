"""ca_service.shared.credentials: the gRPC client credential from its directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from ca_service.shared.credentials import ClientCredential, load_credential
from ca_service.shared.errors import ConfigError


def test_the_three_files_or_a_clear_error(tmp_path: Path) -> None:
    for name in ("cert.pem", "key.pem", "ca.pem"):
        (tmp_path / name).write_bytes(name.encode())
    assert load_credential(tmp_path) == ClientCredential(b"cert.pem", b"key.pem", b"ca.pem")
    (tmp_path / "key.pem").unlink()
    with pytest.raises(ConfigError, match=f"credential in {tmp_path}: No such file"):
        load_credential(tmp_path)
