"""The specification's worked examples, carried by the project so that a clone with nothing
beside it can run every test. ``validity.csv`` is a verbatim copy of
``../shared/vectors/validity.csv``; ``test_vectors_match_the_shared_copy`` compares the two
wherever the shared folder exists."""

from __future__ import annotations

from pathlib import Path

__all__ = ["SHARED_VALIDITY_CSV", "VALIDITY_CSV"]

VALIDITY_CSV = Path(__file__).resolve().parent / "validity.csv"
# The project's sibling folder of shared material, when the checkout has one.
SHARED_VALIDITY_CSV = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "validity.csv"
