"""CA keys in a PKCS#11 token (an HSM; SoftHSM2 in the tests): generated there, never
extractable, used through :class:`~ca_service.pki.signer.Signer`.

The signers are called from the event loop and from worker threads (issuance and OCSP sign
from threads when the key is in a token, CRLs always do). python-pkcs11 initialises a module
with ``C_Initialize(NULL)``, which tells the module that the application does not call it
from several threads at once (PKCS#11 v2.40 5.4), and SoftHSM2 then uses no locks of its
own: two signatures at once failed with ``CKR_GENERAL_ERROR``. So every call into a module
holds that module's lock, and a :class:`Pkcs11Token` uses one session, which logs in with
the PIN and stays open while the token is open; the PIN itself is not kept and never logged.

Keys are found by label (the issuing CA's) or by ``CKA_ID``, which is the key identifier
of the public key (RFC 5280 4.2.1.2 method 1; the OCSP responder's keys, one per rotation).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pkcs11
from asn1crypto import algos, core
from asn1crypto import keys as asn1_keys
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import (
    encode_ec_public_key,
    encode_ecdsa_signature,
    encode_named_curve_parameters,
)
from pkcs11.util.rsa import encode_rsa_public_key

from ca_service.errors import ConfigurationError, Unavailable
from ca_service.pki.certificates import key_identifier
from ca_service.pki.keys import KeyAlgorithm

__all__ = ["Pkcs11Signer", "Pkcs11Token", "TokenKeyAttributes"]

log = logging.getLogger(__name__)

_CURVES = {KeyAlgorithm.EC_P256: "secp256r1", KeyAlgorithm.EC_P384: "secp384r1"}
_RSA_BITS = {KeyAlgorithm.RSA_3072: 3072}
# What every CA private key in the token is: a token object, private, usable only to sign,
# SENSITIVE (its value is never revealed) and not EXTRACTABLE (not even wrapped).
_PRIVATE_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.SIGN: True,
    Attribute.DECRYPT: False,
    Attribute.UNWRAP: False,
    Attribute.DERIVE: False,
}
_PUBLIC_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.VERIFY: True,
    Attribute.ENCRYPT: False,
    Attribute.WRAP: False,
    Attribute.DERIVE: False,
}


@dataclass(frozen=True)
class TokenKeyAttributes:
    """What the token says about a private key's protection."""

    sensitive: bool
    extractable: bool
    always_sensitive: bool
    never_extractable: bool


def _unavailable(what: str, exc: Exception) -> Unavailable:
    # The PKCS#11 return code names the cause; nothing secret is in it.
    return Unavailable(f"the PKCS#11 token failed to {what}: {type(exc).__name__}")


def _spki(public: Any) -> bytes:
    if public.key_type == KeyType.EC:
        return bytes(encode_ec_public_key(public))
    pkcs1 = asn1_keys.RSAPublicKey.load(encode_rsa_public_key(public))
    return bytes(asn1_keys.PublicKeyInfo.wrap(pkcs1, "rsa").dump())


_EC_SCHEMES = {"secp256r1": ("sha256", "sha256_ecdsa"), "secp384r1": ("sha384", "sha384_ecdsa")}


@dataclass(frozen=True)
class SignatureScheme:
    """How a key signs: ECDSA over the named hash, or RSA PKCS#1 v1.5 with SHA-256."""

    algorithm_der: bytes
    hash_name: str
    ecdsa: bool


def signature_scheme(spki: bytes) -> SignatureScheme:
    """The scheme a CA key with SubjectPublicKeyInfo ``spki`` signs with (the same choices
    as :class:`~ca_service.pki.signer.SoftwareSigner`), for a key in the token."""
    info = asn1_keys.PublicKeyInfo.load(spki)
    if info.algorithm == "ec":
        curve = info.curve[1]
        if curve not in _EC_SCHEMES:
            raise ValueError(f"unsupported CA curve {curve}")
        hash_name, name = _EC_SCHEMES[curve]
        return SignatureScheme(
            algos.SignedDigestAlgorithm({"algorithm": name}).dump(), hash_name, ecdsa=True
        )
    if info.algorithm == "rsa":
        if info.bit_size < 2048:
            raise ValueError("RSA CA keys must have at least 2048 bits")
        algorithm = algos.SignedDigestAlgorithm(
            {"algorithm": "sha256_rsa", "parameters": core.Null()}
        )
        return SignatureScheme(algorithm.dump(), "sha256", ecdsa=False)
    raise ValueError(f"unsupported CA key algorithm {info.algorithm}")


@dataclass
class _Session:
    session: Any
    # Private-key objects found on the session (they are bound to it), by lookup key.
    keys: dict[tuple[str, bytes], Any] = field(default_factory=dict)


# One lock per loaded module (see the module documentation), by the module's path.
_MODULE_LOCKS: dict[str, threading.Lock] = {}
_MODULE_LOCKS_LOCK = threading.Lock()


def _module_lock(module: Path) -> threading.Lock:
    with _MODULE_LOCKS_LOCK:
        return _MODULE_LOCKS.setdefault(str(module.resolve()), threading.Lock())


class Pkcs11Token:
    """One token of one PKCS#11 module, logged in as the user."""

    def __init__(self, module: Path, token_label: str, pin: str) -> None:
        self._lock = _module_lock(module)
        with self._lock:
            self._login = self._open(module, token_label, pin)
        self.label = token_label
        self._closed = False

    @staticmethod
    def _open(module: Path, token_label: str, pin: str) -> _Session:
        try:
            lib = pkcs11.lib(str(module))
        except (RuntimeError, OSError, pkcs11.PKCS11Error) as exc:
            raise ConfigurationError(f"cannot load the PKCS#11 module {module}: {exc}") from None
        try:
            token = lib.get_token(token_label=token_label)
        except pkcs11.NoSuchToken:
            raise ConfigurationError(
                f"no PKCS#11 token labelled {token_label!r} in {module}"
            ) from None
        except pkcs11.PKCS11Error as exc:
            raise _unavailable("list its tokens", exc) from None
        try:
            return _Session(token.open(user_pin=pin, rw=True))
        except pkcs11.PinIncorrect:
            raise ConfigurationError(
                f"the PIN of the PKCS#11 token {token_label!r} is wrong"
            ) from None
        except pkcs11.PKCS11Error as exc:
            raise _unavailable("log in", exc) from None

    @contextlib.contextmanager
    def _session(self) -> Iterator[_Session]:
        """The token's session, while this thread holds the module's lock."""
        with self._lock:
            if self._closed:
                raise Unavailable("the PKCS#11 token is closed")
            yield self._login

    def close(self) -> None:
        """Closes the session (which logs out)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(pkcs11.PKCS11Error):
                self._login.session.close()

    # -- keys ---------------------------------------------------------------------------

    def generate(
        self, algorithm: KeyAlgorithm, label: str, *, label_may_repeat: bool = False
    ) -> Pkcs11Signer:
        """A new key pair in the token, the private key sensitive and not extractable;
        ``CKA_ID`` is the public key's key identifier. An existing key with ``label`` is
        an error unless ``label_may_repeat`` (the OCSP responder's label, one pair per rotation)."""
        with self._session() as current:
            session = current.session
            if not label_may_repeat and self._find(session, ObjectClass.PRIVATE_KEY, label=label):
                raise ConfigurationError(
                    f"the PKCS#11 token {self.label!r} already holds a key labelled {label!r}"
                )
            try:
                if algorithm in _CURVES:
                    parameters = session.create_domain_parameters(
                        KeyType.EC,
                        {Attribute.EC_PARAMS: encode_named_curve_parameters(_CURVES[algorithm])},
                        local=True,
                    )
                    public, private = parameters.generate_keypair(
                        store=True,
                        label=label,
                        public_template=_PUBLIC_TEMPLATE,
                        private_template=_PRIVATE_TEMPLATE,
                    )
                else:
                    public, private = session.generate_keypair(
                        KeyType.RSA,
                        _RSA_BITS[algorithm],
                        store=True,
                        label=label,
                        public_template=_PUBLIC_TEMPLATE,
                        private_template=_PRIVATE_TEMPLATE,
                    )
                spki = _spki(public)
                key_id = key_identifier(spki)
                public[Attribute.ID] = key_id
                private[Attribute.ID] = key_id
            except pkcs11.PKCS11Error as exc:
                raise _unavailable(f"generate the key {label!r}", exc) from None
        log.info("generated the key %r in the PKCS#11 token %r", label, self.label)
        return Pkcs11Signer(self, ("id", key_id), spki)

    @staticmethod
    def _find(session: Any, object_class: ObjectClass, **match: Any) -> list[Any]:
        attributes: dict[Attribute, Any] = {Attribute.CLASS: object_class}
        if "label" in match:
            attributes[Attribute.LABEL] = match["label"]
        if "key_id" in match:
            attributes[Attribute.ID] = match["key_id"]
        return list(session.get_objects(attributes))

    def _public(self, **match: Any) -> bytes:
        with self._session() as current:
            try:
                found = self._find(current.session, ObjectClass.PUBLIC_KEY, **match)
            except pkcs11.PKCS11Error as exc:
                raise _unavailable("find a public key", exc) from None
        if len(found) != 1:
            what = ", ".join(f"{k} {v!r}" for k, v in match.items())
            raise ConfigurationError(
                f"the PKCS#11 token {self.label!r} holds {len(found)} public keys with {what}; "
                "expected one"
            )
        return _spki(found[0])

    def signer(self, label: str) -> Pkcs11Signer:
        """The signer of the key pair labelled ``label``."""
        return Pkcs11Signer(self, ("label", label.encode()), self._public(label=label))

    def signer_for(self, spki: bytes) -> Pkcs11Signer:
        """The signer of the key pair whose public key is ``spki`` (found by ``CKA_ID``)."""
        key_id = key_identifier(spki)
        found = self._public(key_id=key_id)
        if found != spki:
            raise ConfigurationError(
                f"the key {key_id.hex()} in the PKCS#11 token {self.label!r} is not the "
                "certified one"
            )
        return Pkcs11Signer(self, ("id", key_id), spki)

    def _private(self, current: _Session, lookup: tuple[str, bytes]) -> Any:
        key = current.keys.get(lookup)
        if key is None:
            kind, value = lookup
            match = {"label": value.decode()} if kind == "label" else {"key_id": value}
            found = self._find(current.session, ObjectClass.PRIVATE_KEY, **match)
            if len(found) != 1:
                raise ConfigurationError(
                    f"the PKCS#11 token {self.label!r} holds {len(found)} private keys with "
                    f"{kind} {value!r}; expected one"
                )
            key = current.keys[lookup] = found[0]
        return key

    def sign(self, lookup: tuple[str, bytes], mechanism: Mechanism, data: bytes) -> bytes:
        with self._session() as current:
            try:
                return bytes(self._private(current, lookup).sign(data, mechanism=mechanism))
            except pkcs11.PKCS11Error as exc:
                raise _unavailable("sign", exc) from None

    def attributes(self, lookup: tuple[str, bytes]) -> TokenKeyAttributes:
        with self._session() as current:
            key = self._private(current, lookup)
            return TokenKeyAttributes(
                sensitive=bool(key[Attribute.SENSITIVE]),
                extractable=bool(key[Attribute.EXTRACTABLE]),
                always_sensitive=bool(key[Attribute.ALWAYS_SENSITIVE]),
                never_extractable=bool(key[Attribute.NEVER_EXTRACTABLE]),
            )

    def read_private_value(self, lookup: tuple[str, bytes]) -> bytes:
        """Asks the token for the private key's value (``CKA_VALUE``), which a sensitive
        key refuses with ``AttributeSensitive``: what a key exfiltration would try."""
        with self._session() as current:
            key = self._private(current, lookup)
            value = Attribute.VALUE if key.key_type == KeyType.EC else Attribute.PRIVATE_EXPONENT
            return bytes(key[value])

    def prune(self, label: str, keep: set[bytes]) -> None:
        """Deletes the key pairs labelled ``label`` whose ``CKA_ID`` is not in ``keep``."""
        with self._session() as current:
            try:
                for object_class in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
                    for found in self._find(current.session, object_class, label=label):
                        key_id = bytes(found[Attribute.ID])
                        if key_id not in keep:
                            current.keys.pop(("id", key_id), None)
                            found.destroy()
            except pkcs11.PKCS11Error as exc:
                raise _unavailable(f"delete old keys labelled {label!r}", exc) from None

    def destroy(self, lookup: tuple[str, bytes]) -> None:
        """Deletes the key pair (an OCSP responder key two rotations old)."""
        kind, value = lookup
        match = {"label": value.decode()} if kind == "label" else {"key_id": value}
        with self._session() as current:
            for object_class in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
                for found in self._find(current.session, object_class, **match):
                    found.destroy()
            current.keys.pop(lookup, None)


class Pkcs11Signer:
    """A :class:`~ca_service.pki.signer.Signer` whose key stays in the token. ECDSA: the
    data is hashed here and the token signs the digest (``CKM_ECDSA``, which every token
    has); RSA: ``CKM_SHA256_RSA_PKCS``."""

    def __init__(self, token: Pkcs11Token, lookup: tuple[str, bytes], spki: bytes) -> None:
        self._token = token
        self.lookup = lookup
        self._spki = spki
        self._scheme: SignatureScheme = signature_scheme(spki)

    @property
    def signature_algorithm(self) -> bytes:
        return self._scheme.algorithm_der

    @property
    def public_key_der(self) -> bytes:
        return self._spki

    def sign(self, data: bytes) -> bytes:
        if self._scheme.ecdsa:
            digest = hashlib.new(self._scheme.hash_name, data).digest()
            raw = self._token.sign(self.lookup, Mechanism.ECDSA, digest)
            return bytes(encode_ecdsa_signature(raw))
        return self._token.sign(self.lookup, Mechanism.SHA256_RSA_PKCS, data)

    def attributes(self) -> TokenKeyAttributes:
        return self._token.attributes(self.lookup)
