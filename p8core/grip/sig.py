"""Grip-Sig: the JWT a GRIP proxy signs backend requests with, and the check of one sent by
a trusted upstream proxy (grip.md §2.4).

Key syntax, as Pushpin's ``sig_key``/``upstream_key``: a plain string is the HMAC secret
(HS256); ``base64:<b64>`` is a binary HMAC secret; ``file:<path>`` is a PEM key file
(relative to ``base_dir``), signing with ES256 (EC P-256) or RS256 (RSA). PEM keys need
the ``cryptography`` package. HS256 is computed here with the standard library (PyJWT
warns about short HMAC keys such as Pushpin's default ``changeme``); PEM keys go through
PyJWT.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import importlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

__all__ = ["TOKEN_LIFETIME", "SigKeyError", "Signer", "Verifier"]

#: Seconds from signing to ``exp``.
TOKEN_LIFETIME = 3600

_HS256_HEADER = b'{"typ":"JWT","alg":"HS256"}'
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class SigKeyError(ValueError):
    """A Grip-Sig key that cannot be used: empty, unreadable, or of an unsupported kind."""


@dataclass(frozen=True, slots=True)
class _Key:
    """A parsed key: ``secret`` for HS256, else a ``cryptography`` key object."""

    alg: str
    secret: bytes = b""
    crypto_key: Any = None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    """Strict base64url without padding, as JWS uses."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _crypto(what: str) -> tuple[Any, Any, Any]:
    """The ``cryptography`` modules for PEM keys: serialization, ec, rsa."""
    try:
        return (
            importlib.import_module("cryptography.hazmat.primitives.serialization"),
            importlib.import_module("cryptography.hazmat.primitives.asymmetric.ec"),
            importlib.import_module("cryptography.hazmat.primitives.asymmetric.rsa"),
        )
    except ImportError:
        raise SigKeyError(f"{what}: PEM keys need the 'cryptography' package "
                          "(pip install cryptography)") from None


def _load_pem(spec: str, base_dir: Path | None, *, private: bool) -> _Key:
    """Read ``file:<path>``: a private key for signing; for checking, a private key (its
    public half is used) or a public key."""
    path = Path(spec[len("file:"):])
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    serialization, ec, rsa = _crypto(str(path))
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SigKeyError(f"cannot read key file {path}: {e.strerror or e}") from None
    key: Any
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except Exception:  # wrong kind, encrypted, or not PEM at all
        if private:
            raise SigKeyError(f"{path}: not an unencrypted PEM private key") from None
        try:
            key = serialization.load_pem_public_key(data)
        except Exception:
            raise SigKeyError(f"{path}: not a PEM private or public key") from None
    else:
        if not private:
            key = key.public_key()
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if key.curve.name != "secp256r1":
            raise SigKeyError(f"{path}: EC keys must use curve P-256 (ES256), "
                              f"not {key.curve.name}")
        return _Key("ES256", crypto_key=key)
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return _Key("RS256", crypto_key=key)
    raise SigKeyError(f"{path}: only EC (P-256) and RSA keys are supported")


def _load_key(spec: str, base_dir: Path | None, *, private: bool) -> _Key:
    if not spec:
        raise SigKeyError("the key is empty; an empty HMAC secret would be trivial to forge")
    if spec.startswith("base64:"):
        text = "".join(spec[len("base64:"):].split())
        try:
            secret = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except binascii.Error:
            raise SigKeyError("'base64:' key is not valid base64") from None
        if not secret:
            raise SigKeyError("'base64:' key decodes to an empty secret")
        return _Key("HS256", secret=secret)
    if spec.startswith("file:"):
        return _load_pem(spec, base_dir, private=private)
    return _Key("HS256", secret=spec.encode("utf-8"))


class Signer:
    """Makes the ``Grip-Sig`` token for backend requests.

    The token holds only ``iss`` and ``exp`` (now + 3600 s), so it is made once per
    second of ``now`` and reused for every request in that second.
    """

    __slots__ = ("_key", "_second", "_token", "alg", "iss")

    def __init__(self, iss: str, key: str, *, base_dir: Path | None = None) -> None:
        """:param key: see the module docstring; ``file:`` paths are relative to ``base_dir``.
        :raises SigKeyError: (a ``ValueError``) the key is empty or cannot be used."""
        self.iss = iss
        self._key = _load_key(key, base_dir, private=True)
        self.alg = self._key.alg
        self._second: int | None = None
        self._token = ""

    def token(self, now: float) -> str:
        """The token for a request sent at ``now`` (Unix seconds)."""
        second = math.floor(now)
        if second != self._second:
            self._token = self._make(second + TOKEN_LIFETIME)
            self._second = second
        return self._token

    def _make(self, exp: int) -> str:
        claims = {"iss": self.iss, "exp": exp}
        if self._key.alg != "HS256":
            return jwt.encode(claims, self._key.crypto_key, algorithm=self._key.alg,
                              headers={"typ": "JWT"})
        payload = json.dumps(claims, separators=(",", ":")).encode("utf-8")
        signing_input = f"{_b64url(_HS256_HEADER)}.{_b64url(payload)}"
        mac = hmac.new(self._key.secret, signing_input.encode("ascii"), hashlib.sha256)
        return f"{signing_input}.{_b64url(mac.digest())}"


class Verifier:
    """Checks a client's ``Grip-Sig`` against ``upstream_key``: a valid one makes the
    client a trusted upstream proxy (grip.md §2.4)."""

    __slots__ = ("_key", "alg")

    def __init__(self, key: str, *, base_dir: Path | None = None) -> None:
        """:param key: as for :class:`Signer`; a ``file:`` key may be a private key (its
        public half is used) or a public key.
        :raises SigKeyError: (a ``ValueError``) the key is empty or cannot be used."""
        self._key = _load_key(key, base_dir, private=False)
        self.alg = self._key.alg

    def is_valid(self, token: str, now: float) -> bool:
        """Whether ``token`` is signed with this key (in this key's algorithm) and has a
        numeric ``exp`` later than ``now``. Any malformed token is simply invalid."""
        try:
            claims = self.claims(token)
            exp = claims.get("exp")
            if isinstance(exp, bool) or not isinstance(exp, int | float):
                return False
            return bool(exp > now)
        except Exception:
            return False

    def claims(self, token: str) -> dict[str, Any]:
        """The claims of ``token`` when it is signed with this key; nothing else is checked.

        :raises Exception: ``ValueError`` or a PyJWT error: malformed, another algorithm,
            or a signature that does not verify.
        """
        if self._key.alg != "HS256":
            payload = jwt.PyJWS().decode(token, self._key.crypto_key,
                                         algorithms=[self._key.alg])
        else:
            head, body, sig = token.split(".")
            header = json.loads(_b64url_decode(head))
            if not isinstance(header, dict) or header.get("alg") != "HS256":
                raise ValueError("not an HS256 token")
            mac = hmac.new(self._key.secret, f"{head}.{body}".encode("ascii"), hashlib.sha256)
            if not hmac.compare_digest(mac.digest(), _b64url_decode(sig)):
                raise ValueError("bad signature")
            payload = _b64url_decode(body)
        claims = json.loads(payload)
        if not isinstance(claims, dict):
            raise ValueError("claims are not an object")
        return claims

    def is_secret(self, value: bytes) -> bool:
        """Whether ``value`` is this key's HMAC secret itself (constant time); never for
        a PEM key."""
        return self._key.alg == "HS256" and hmac.compare_digest(value, self._key.secret)
