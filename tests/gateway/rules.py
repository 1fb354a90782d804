"""The rule figures as a CA with SPEC's rules reports them over GetRules (the domain's
figures through the servicer's message into the gateway's value), and other figures, to
show that the screens say whatever the CA reports."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from ca_service.adapters.grpc.servicer import rules_message
from ca_service.domain.rules import Rules as DomainRules
from gateway.accounts import Rules

__all__ = ["OTHER_RULES", "RULES"]

RULES = Rules.from_message(rules_message(DomainRules()))
OTHER_RULES = replace(
    RULES,
    failures_to_lock=5,
    lock_duration=timedelta(minutes=20),
    locks_to_block=4,
    code_validity=timedelta(seconds=90),
    code_digits=8,
    certificate_validity_days=397,
    renewal_window_days=14,
    user_id_min_length=4,
    user_id_max_length=16,
    password_min_length=10,
    password_max_length=32,
    email_link_validity=timedelta(hours=48),
    resend_interval=timedelta(minutes=2),
    resends_per_window=7,
    resend_window=timedelta(minutes=45),
)
