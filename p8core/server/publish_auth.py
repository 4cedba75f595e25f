"""Publish authentication on the control API: the credentials gripcontrol and pubcontrol send.

Off unless ``[control] key`` is set. Then every ``POST /publish/`` and ``/recover`` needs an
``Authorization`` header, in one of the forms the GRIP libraries send:

- ``Bearer <JWT>``: signed with the control key (``GRIP_URL=...?iss=<iss>&key=<key>``), with
  a numeric ``exp`` still in the future and, when ``[control] iss`` is set, that ``iss``.
  A JWT signed with a route's own ``sig_key`` is accepted too when its ``iss`` is that
  route's ``sig_iss``: a backend may publish with the key it checks ``Grip-Sig`` with.
- ``Bearer <key>``: the key itself, what pubcontrol sends for a ``key`` without ``iss``;
  only while ``[control] iss`` is unset.
- ``Basic <user:password>``: the password is the key; the user is the ``iss`` when one is
  required (any user otherwise). pubcontrol's ``Basic b'<base64>'`` spelling is accepted.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass

from ..config import Config
from ..errors import ConfigError
from ..grip.sig import Verifier

__all__ = ["Credential", "PublishAuth", "load_verifier"]


@dataclass(frozen=True, slots=True)
class Credential:
    """One key publishers may sign with, and the issuer it must name (``None``: any)."""

    verifier: Verifier
    iss: str | None


class PublishAuth:
    """Checks the ``Authorization`` header of a control request."""

    __slots__ = ("credentials",)

    def __init__(self, credentials: Sequence[Credential]) -> None:
        self.credentials = tuple(credentials)

    @classmethod
    def from_config(cls, config: Config) -> PublishAuth | None:
        """The check for ``config``, or ``None`` when ``[control] key`` is unset.

        :raises ConfigError: a key that cannot be used, naming it.
        """
        control = config.control
        if not control.key:
            return None
        credentials = [Credential(load_verifier(control.key, config, "control.key"),
                                  control.iss or None)]
        for route in config.routes:
            if route.sig_iss and route.sig_key:
                credentials.append(Credential(
                    load_verifier(route.sig_key, config, "routes.sig_key"), route.sig_iss))
        return cls(credentials)

    def check(self, authorization: bytes | None, now: float) -> str | None:
        """``None`` when ``authorization`` is accepted at ``now`` (Unix seconds), else the
        one-line reason for the ``401``."""
        if authorization is None:
            return "Missing Authorization header."
        scheme, _, value = authorization.decode("latin-1").strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            if any(c.iss is None and c.verifier.is_secret(value.encode("latin-1"))
                   for c in self.credentials):
                return None
            if value.count(".") == 2:
                return self._check_jwt(value, now)
            return "Invalid bearer token."
        if scheme.lower() == "basic":
            return self._check_basic(value)
        return f"Unsupported Authorization scheme: {scheme[:20]}."

    def _check_jwt(self, token: str, now: float) -> str | None:
        problem: str | None = "Invalid token: signature does not verify."
        for credential in self.credentials:
            try:
                claims = credential.verifier.claims(token)
            except Exception:  # not signed with this key, or not a JWT at all
                continue
            problem = _claims_problem(claims, credential.iss, now)
            if problem is None:
                break
        return problem

    def _check_basic(self, value: str) -> str | None:
        if value.startswith("b'") and value.endswith("'"):  # pubcontrol's str(bytes)
            value = value[2:-1]
        try:
            user, sep, password = base64.b64decode(value, validate=True).partition(b":")
        except binascii.Error:
            sep = b""
        if not sep:
            return "Invalid Basic credentials: expected base64 of user:password."
        for credential in self.credentials:
            if credential.iss is not None and user != credential.iss.encode():
                continue
            if credential.verifier.is_secret(password):
                return None
        return "Invalid user or password."


def _claims_problem(claims: dict[str, object], iss: str | None, now: float) -> str | None:
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return "Invalid token: no numeric exp claim."
    if exp <= now:
        return "Invalid token: expired."
    if iss is not None and claims.get("iss") != iss:
        return "Invalid token: iss not accepted."
    return None


def load_verifier(key: str, config: Config, name: str) -> Verifier:
    """A :class:`Verifier` for ``key`` as written in ``config`` at ``name``.

    :raises ConfigError: the key cannot be used.
    """
    try:
        return Verifier(key, base_dir=config.base_dir)
    except ValueError as e:
        raise ConfigError(config.source, name, str(e)) from None
