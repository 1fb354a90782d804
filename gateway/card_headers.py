"""The default names of the headers that carry an identity card holder's attributes upstream
on ``card`` routes (README, "Gateway routes"; each renamable by a ``GATEWAY_HEADER_CARD_*``
setting). Values are ASCII: UTF-8 percent-encoded like the organisation header."""

from __future__ import annotations

__all__ = [
    "CARD_ADDRESS",
    "CARD_BIRTH_DATE",
    "CARD_FINGERPRINT",
    "CARD_HEADERS",
    "CARD_NAME",
    "CARD_SEX",
]

CARD_NAME = "X-Card-Name"
CARD_ADDRESS = "X-Card-Address"
CARD_BIRTH_DATE = "X-Card-Birth-Date"
CARD_SEX = "X-Card-Sex"
# Lower-case hex SHA-256 of the certificate's DER.
CARD_FINGERPRINT = "X-Card-Fingerprint"

CARD_HEADERS = (CARD_NAME, CARD_ADDRESS, CARD_BIRTH_DATE, CARD_SEX, CARD_FINGERPRINT)
