"""The shared package's one error."""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(Exception):
    """A setting, a secret file, a credential or a worker process cannot be used; the
    program does not start. ``ca_service`` and ``gateway`` turn it into their own
    configuration error."""
