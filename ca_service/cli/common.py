"""Where the operator's gRPC credential is, for ca-service and ca-admin."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["credentials_dir"]


def credentials_dir(explicit: Path | None) -> Path | None:
    """The gRPC client credential's directory: ``explicit`` (an option), else
    ``CA_ADMIN_CREDENTIALS``, else None (``<data_dir>/credentials/operator``)."""
    if explicit is not None:
        return explicit
    named = os.environ.get("CA_ADMIN_CREDENTIALS")
    return Path(named) if named else None
