"""The figures of the rules this CA applies, in one value for whoever explains them to
people: the API's ``GetRules`` answers with it, and the gateway's screens show its figures
instead of copies of their own. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from ca_service.domain.codes import CODE_DIGITS, CODE_TTL
from ca_service.domain.credentials import PASSWORD_MAX, PASSWORD_MIN
from ca_service.domain.identifiers import USER_ID_MAX, USER_ID_MIN
from ca_service.domain.lockout import FAILURES_TO_LOCK, LOCK_DURATION, LOCKS_TO_BLOCK
from ca_service.domain.resend import RESEND_INTERVAL, RESEND_WINDOW, RESENDS_PER_WINDOW
from ca_service.domain.validity import RENEWAL_WINDOW_DAYS, VALIDITY_DAYS

__all__ = ["EMAIL_LINK_TTL", "Rules"]

# SPEC D1: an e-mail verification link is valid this long, and only once.
EMAIL_LINK_TTL = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Rules:
    """SPEC's figures. Only the durations of the lock, the code and the resend interval may
    differ from SPEC, and only in tests with real short durations (``CA_LOCK_SECONDS``,
    ``CA_CODE_TTL_SECONDS``, ``CA_RESEND_INTERVAL_SECONDS``)."""

    lock_duration: timedelta = LOCK_DURATION
    code_validity: timedelta = CODE_TTL
    user_id_min_length: int = USER_ID_MIN
    user_id_max_length: int = USER_ID_MAX
    password_min_length: int = PASSWORD_MIN
    password_max_length: int = PASSWORD_MAX
    code_digits: int = CODE_DIGITS
    failures_to_lock: int = FAILURES_TO_LOCK
    locks_to_block: int = LOCKS_TO_BLOCK
    certificate_validity_days: int = VALIDITY_DAYS
    renewal_window_days: int = RENEWAL_WINDOW_DAYS
    email_link_validity: timedelta = EMAIL_LINK_TTL
    resend_interval: timedelta = RESEND_INTERVAL
    resends_per_window: int = RESENDS_PER_WINDOW
    resend_window: timedelta = RESEND_WINDOW
