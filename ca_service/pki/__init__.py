"""X.509 and DER building blocks. No I/O and no clock reads: callers pass time in."""

from ca_service.pki import asn1_classes

# Before any module of this package can be used from a thread (see asn1_classes).
asn1_classes.prepare()
