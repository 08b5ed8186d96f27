"""A minimal investigator token issuer: JWKS publication and token minting.

Real deployments use their agency's identity provider; this module is what the demo and
the tests use in its place, and what ``comity init`` uses to write each agency's JWKS.
Issuer keys are Ed25519 (``EdDSA``) or ECDSA P-256 (``ES256``), the only algorithms the
gateway accepts. A key's ``kid`` is its RFC 7638 JWK thumbprint unless given.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from comity.core.errors import ConfigError
from comity.core.keys import KeyFileError

__all__ = [
    "IssuerPrivateKey",
    "IssuerPublicKey",
    "jwk_thumbprint",
    "jwks_document",
    "load_issuer_key",
    "mint_token",
    "public_jwk",
]

IssuerPrivateKey = Ed25519PrivateKey | ec.EllipticCurvePrivateKey
IssuerPublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _required_members(key: IssuerPublicKey) -> dict[str, str]:
    """The JWK members RFC 7638 hashes, for the two key types Comity accepts."""
    if isinstance(key, Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}
    if isinstance(key.curve, ec.SECP256R1):
        numbers = key.public_numbers()
        return {
            "crv": "P-256",
            "kty": "EC",
            "x": _b64url(numbers.x.to_bytes(32, "big")),
            "y": _b64url(numbers.y.to_bytes(32, "big")),
        }
    raise ConfigError(f"issuer keys must be Ed25519 or P-256, not {key.curve.name}")


def _algorithm(key: IssuerPrivateKey | IssuerPublicKey) -> str:
    return "EdDSA" if isinstance(key, Ed25519PrivateKey | Ed25519PublicKey) else "ES256"


def jwk_thumbprint(key: IssuerPublicKey) -> str:
    """RFC 7638 thumbprint (SHA-256, base64url) of the public key."""
    members = _required_members(key)
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return _b64url(hashlib.sha256(canonical).digest())


def public_jwk(key: IssuerPublicKey, *, kid: str | None = None) -> dict[str, str]:
    """The public JWK of ``key`` with ``kid``, ``alg`` and ``use`` set."""
    jwk = _required_members(key)
    jwk.update(kid=kid or jwk_thumbprint(key), alg=_algorithm(key), use="sig")
    return jwk


def jwks_document(*keys: IssuerPublicKey) -> dict[str, Any]:
    """A JWKS (``{"keys": [...]}``) publishing ``keys``; list old and new keys while rotating."""
    return {"keys": [public_jwk(k) for k in keys]}


def load_issuer_key(path: Path, *, passphrase: bytes | None = None) -> IssuerPrivateKey:
    """Read a PEM Ed25519 or P-256 private key written by ``comity init``."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=passphrase)
    except OSError as exc:
        raise KeyFileError(f"cannot read issuer key {path}: {exc.strerror}") from None
    except TypeError:
        raise KeyFileError(
            f"issuer key {path} is encrypted and no passphrase was given, or it is not encrypted and one was",
            hint="set or unset COMITY_KEY_PASSPHRASE to match the key file",
        ) from None
    except ValueError:
        raise KeyFileError(
            f"issuer key {path} is not a readable PEM private key (damaged, another format, or "
            "encrypted under another passphrase)",
            hint="give the right passphrase, or write a new issuer key (`comity keys issuer`) and "
            "publish its JWKS",
        ) from None
    if isinstance(key, Ed25519PrivateKey):
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise KeyFileError(f"issuer key {path} must be Ed25519 or ECDSA P-256")


def mint_token(
    issuer_private_key: IssuerPrivateKey,
    *,
    issuer: str,
    subject: str,
    audience: str,
    ttl: timedelta,
    now: datetime,
    kid: str | None = None,
    extra_claims: dict[str, Any] | None = None,
) -> str:
    """A signed JWT for ``subject``: ``iss``, ``sub``, ``aud``, ``iat``, ``nbf``, ``exp`` and ``jti``."""
    issued = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + int(ttl.total_seconds()),
        "jti": str(uuid.uuid4()),
    }
    claims.update(extra_claims or {})
    headers = {"kid": kid or jwk_thumbprint(issuer_private_key.public_key())}
    return jwt.encode(claims, issuer_private_key, algorithm=_algorithm(issuer_private_key), headers=headers)
