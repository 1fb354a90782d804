"""asn1crypto's classes made ready before any thread uses them.

asn1crypto builds each class's lookup tables (OID names, field maps, tag maps) on the first
instance, unguarded: ``cls._reverse_map = {}``, then filled. A second thread making its first
instance of the same class meanwhile reads the half-built table — ``'sha1'`` not yet mapped
to its OID — and fails (``ca-service init`` encrypts its keys in parallel threads; CRLs,
OCSP answers and certificates are built in threads when the key is in an HSM). One instance
of every class of the modules used here, made once at import (~3 ms), builds them all
before any thread can."""

from __future__ import annotations

from asn1crypto import algos, cms, core, crl, csr, keys, ocsp, pkcs12, x509

__all__ = ["prepare"]

_MODULES = (core, algos, keys, x509, crl, ocsp, cms, csr, pkcs12)


def prepare() -> int:
    """Makes one instance of each class (its tables built); returns how many classes."""
    prepared = 0
    for module in _MODULES:
        for value in list(vars(module).values()):
            if (
                isinstance(value, type)
                and issubclass(value, core.Asn1Value)
                and value.__module__ == module.__name__
                and value is not core.Choice  # abstract: no alternatives to set up
            ):
                value()
                prepared += 1
    return prepared
