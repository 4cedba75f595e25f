"""Grip-Sig signing and upstream verification (grip.md §2.4)."""

from __future__ import annotations

import base64
import importlib.util
import json
import time
from pathlib import Path

import gripcontrol
import jwt
import pytest

from p8core.grip.sig import TOKEN_LIFETIME, SigKeyError, Signer, Verifier

KEY = "a-shared-secret-that-is-32-bytes"  # PyJWT (inside gripcontrol) warns below 32 bytes
HAS_CRYPTOGRAPHY = importlib.util.find_spec("cryptography") is not None


def _pad(s: str) -> str:
    return s + "=" * (-len(s) % 4)


def segments(token: str) -> tuple[dict[str, object], dict[str, object]]:
    head, body, _ = token.split(".")
    pad = _pad
    return (json.loads(base64.urlsafe_b64decode(pad(head))),
            json.loads(base64.urlsafe_b64decode(pad(body))))


def hs256(claims: dict[str, object], secret: bytes, header: dict[str, object] | None = None,
          ) -> str:
    """A token made by hand, for shapes PyJWT would not produce."""
    import hashlib
    import hmac

    def enc(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    if header is None:
        header = {"alg": "HS256", "typ": "JWT"}
    signing = enc(json.dumps(header).encode()) + "." + enc(json.dumps(claims).encode())
    return signing + "." + enc(hmac.new(secret, signing.encode(), hashlib.sha256).digest())


# ---- Signer ---------------------------------------------------------------------------------

def test_token_shape_matches_pushpin() -> None:
    token = Signer("pushpin", KEY).token(1_700_000_000.7)
    header, claims = segments(token)
    assert token.split(".")[0] == base64.urlsafe_b64encode(
        b'{"typ":"JWT","alg":"HS256"}').rstrip(b"=").decode()
    assert header == {"typ": "JWT", "alg": "HS256"}
    assert claims == {"iss": "pushpin", "exp": 1_700_000_000 + TOKEN_LIFETIME}


def test_gripcontrol_accepts_the_token() -> None:
    token = Signer("pushpin", KEY).token(time.time())
    assert gripcontrol.validate_sig(token, KEY)
    assert gripcontrol.validate_sig(token, KEY, iss="pushpin")
    assert not gripcontrol.validate_sig(token, KEY, iss="other")
    assert not gripcontrol.validate_sig(token, KEY + "x")


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_gripcontrol_accepts_a_short_key_token() -> None:
    token = Signer("pushpin", "changeme").token(time.time())
    assert gripcontrol.validate_sig(token, "changeme")


def test_gripcontrol_rejects_an_expired_token() -> None:
    token = Signer("pushpin", KEY).token(time.time() - TOKEN_LIFETIME - 5)
    assert not gripcontrol.validate_sig(token, KEY)


def test_base64_key_is_a_binary_secret() -> None:
    secret = bytes(range(32))
    token = Signer("p8", "base64:" + base64.b64encode(secret).decode()).token(time.time())
    assert gripcontrol.validate_sig(token, secret)
    assert jwt.decode(token, secret, algorithms=["HS256"])["iss"] == "p8"


def test_base64_key_without_padding() -> None:
    signer = Signer("p8", "base64:" + base64.b64encode(b"\x01\x02").decode().rstrip("="))
    assert Verifier("base64:AQI=").is_valid(signer.token(100.0), 100.0)


def test_token_is_cached_per_second() -> None:
    signer = Signer("pushpin", KEY)
    first = signer.token(1000.1)
    assert signer.token(1000.9) is first
    later = signer.token(1001.0)
    assert later != first
    assert segments(later)[1]["exp"] == 1001 + TOKEN_LIFETIME
    assert signer.token(1001.5) is later


def test_iss_is_json_escaped() -> None:
    token = Signer('we "quote"\n', KEY).token(5.0)
    assert segments(token)[1]["iss"] == 'we "quote"\n'


@pytest.mark.parametrize("key", ["", "base64:", "base64:!!!", "base64:===="])
def test_unusable_keys(key: str) -> None:
    with pytest.raises(ValueError):
        Signer("pushpin", key)
    with pytest.raises(SigKeyError):
        Verifier(key)


def test_missing_key_file(tmp_path: Path) -> None:
    if not HAS_CRYPTOGRAPHY:
        pytest.skip("needs cryptography to get past the import")
    with pytest.raises(SigKeyError, match="cannot read key file"):
        Signer("p", "file:nope.pem", base_dir=tmp_path)


@pytest.mark.skipif(HAS_CRYPTOGRAPHY, reason="cryptography is installed")
def test_pem_key_without_cryptography_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(SigKeyError, match="cryptography"):
        Signer("p", "file:key.pem", base_dir=tmp_path)
    with pytest.raises(ValueError, match="pip install cryptography"):
        Verifier("file:key.pem", base_dir=tmp_path)


# ---- Verifier -------------------------------------------------------------------------------

def test_verifier_accepts_until_exp() -> None:
    token = Signer("up", KEY).token(1000.0)
    verifier = Verifier(KEY)
    assert verifier.alg == "HS256"
    assert verifier.is_valid(token, 1000.0)
    assert verifier.is_valid(token, 1000.0 + TOKEN_LIFETIME - 0.001)
    assert not verifier.is_valid(token, 1000.0 + TOKEN_LIFETIME)


def test_verifier_accepts_pyjwt_tokens() -> None:
    now = time.time()
    assert Verifier(KEY).is_valid(jwt.encode({"iss": "x", "exp": int(now) + 60}, KEY), now)


def test_verifier_rejects_wrong_key() -> None:
    token = Signer("up", KEY).token(1000.0)
    assert not Verifier(KEY + "-other").is_valid(token, 1000.0)


def test_empty_secret_tokens_are_never_trusted() -> None:
    # Pushpin 1.36 trusts these with its default empty upstream_key (grip.md §2.4 [Q]);
    # p8 refuses the empty key, and no other key accepts them.
    token = hs256({"exp": 10_000}, b"")
    assert not Verifier(KEY).is_valid(token, 1.0)


@pytest.mark.parametrize("claims", [{}, {"exp": "9999"}, {"exp": True}, {"exp": None},
                                    {"exp": 999.5}])
def test_verifier_needs_a_numeric_future_exp(claims: dict[str, object]) -> None:
    assert not Verifier(KEY).is_valid(hs256(claims, KEY.encode()), 1000.0)


def test_verifier_accepts_float_exp() -> None:
    assert Verifier(KEY).is_valid(hs256({"exp": 1000.5}, KEY.encode()), 1000.0)


@pytest.mark.parametrize("header", [{"alg": "none"}, {"alg": "HS512"}, {"alg": "RS256"}, {}])
def test_verifier_insists_on_the_key_algorithm(header: dict[str, object]) -> None:
    assert not Verifier(KEY).is_valid(hs256({"exp": 5000}, KEY.encode(), header), 1000.0)


def test_verifier_rejects_non_object_claims() -> None:
    import hashlib
    import hmac

    head = base64.urlsafe_b64encode(b'{"alg":"HS256"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(b"[1]").rstrip(b"=").decode()
    sig = hmac.new(KEY.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    token = f"{head}.{body}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"
    assert not Verifier(KEY).is_valid(token, 0.0)


@pytest.mark.parametrize("token", [
    "", "bogus", "a.b", "a.b.c", "a.b.c.d", "....", "\u00e9.\u00e9.\u00e9",
    "eyJhbGciOiJIUzI1NiJ9.e30.", "eyJhbGciOiJIUzI1NiJ9.e30.+/+/",
])
def test_verifier_rejects_garbage(token: str) -> None:
    assert not Verifier(KEY).is_valid(token, 0.0)


def test_verifier_rejects_a_tampered_token() -> None:
    token = Signer("up", KEY).token(1000.0)
    head, _, sig = token.split(".")
    forged = base64.urlsafe_b64encode(b'{"iss":"up","exp":99999999}').rstrip(b"=").decode()
    assert not Verifier(KEY).is_valid(f"{head}.{forged}.{sig}", 1000.0)


# ---- PEM keys (need cryptography) -----------------------------------------------------------

def _write_keys(tmp_path: Path, kind: str) -> tuple[str, bytes]:
    """Write ``priv.pem`` and ``pub.pem``; return the algorithm and the public PEM."""
    crypto = pytest.importorskip("cryptography.hazmat.primitives.serialization")
    if kind == "ec":
        ec = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ec")
        key = ec.generate_private_key(ec.SECP256R1())
        alg = "ES256"
    else:
        rsa = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.rsa")
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        alg = "RS256"
    (tmp_path / "priv.pem").write_bytes(key.private_bytes(
        crypto.Encoding.PEM, crypto.PrivateFormat.PKCS8, crypto.NoEncryption()))
    public = key.public_key().public_bytes(crypto.Encoding.PEM,
                                           crypto.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "pub.pem").write_bytes(public)
    return alg, public


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_pem_signing(tmp_path: Path, kind: str) -> None:
    alg, public = _write_keys(tmp_path, kind)
    signer = Signer("pushpin", "file:priv.pem", base_dir=tmp_path)
    assert signer.alg == alg
    now = time.time()
    token = signer.token(now)
    header, claims = segments(token)
    assert header == {"alg": alg, "typ": "JWT"}
    assert claims == {"iss": "pushpin", "exp": int(now) + TOKEN_LIFETIME}
    assert signer.token(now) is token
    assert gripcontrol.validate_sig(token, public)
    assert not gripcontrol.validate_sig(signer.token(now - TOKEN_LIFETIME - 5), public)

    for spec in ("file:priv.pem", "file:pub.pem", f"file:{tmp_path / 'pub.pem'}"):
        verifier = Verifier(spec, base_dir=tmp_path)
        assert verifier.alg == alg
        assert verifier.is_valid(token, now)
        assert not verifier.is_valid(token, now + TOKEN_LIFETIME + 1)
        assert not verifier.is_valid("garbage", now)
        assert not verifier.is_valid(Signer("x", KEY).token(now), now)


def test_pem_wrong_key_and_public_key_cannot_sign(tmp_path: Path) -> None:
    _write_keys(tmp_path, "ec")
    other = tmp_path / "other"
    other.mkdir()
    _write_keys(other, "ec")
    token = Signer("p", "file:priv.pem", base_dir=tmp_path).token(1000.0)
    assert not Verifier("file:pub.pem", base_dir=other).is_valid(token, 1000.0)
    with pytest.raises(SigKeyError, match="private key"):
        Signer("p", "file:pub.pem", base_dir=tmp_path)


def test_pem_unsupported_keys(tmp_path: Path) -> None:
    crypto = pytest.importorskip("cryptography.hazmat.primitives.serialization")
    ec = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ec")
    key = ec.generate_private_key(ec.SECP384R1())
    (tmp_path / "p384.pem").write_bytes(key.private_bytes(
        crypto.Encoding.PEM, crypto.PrivateFormat.PKCS8, crypto.NoEncryption()))
    (tmp_path / "junk.pem").write_bytes(b"not a key")
    with pytest.raises(SigKeyError, match="P-256"):
        Signer("p", "file:p384.pem", base_dir=tmp_path)
    with pytest.raises(SigKeyError, match="not a PEM"):
        Verifier("file:junk.pem", base_dir=tmp_path)
