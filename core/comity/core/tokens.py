"""Investigator and legal-officer authentication: JWT bearer tokens verified against the JWKS.

Checks, in order, each raising :class:`TokenError` (UNAUTHENTICATED) that names the check:

1. a token is present and is a compact JWS of sane size;
2. the header's ``alg`` is ``EdDSA`` or ``ES256`` (never ``none``, never HMAC: an HS256 token
   "signed" with a public key is refused here, before any key is touched) and it names a ``kid``;
3. the ``iss`` claim names an issuer the federation trusts, and ``kid`` one of its keys whose
   algorithm is the header's;
4. the signature verifies with that key (pyjwt, only that key's algorithm allowed), the
   audience is this gateway's, and ``iss``, ``sub``, ``aud``, ``exp``, ``iat`` are present;
5. ``exp``, ``nbf`` and ``iat`` hold at ``now`` within the leeway, and the token does not live
   longer than the maximum lifetime;
6. the subject is registered with the issuer's agency in the role the call needs: an
   investigator (:meth:`TokenVerifier.verify`) or a legal officer
   (:meth:`TokenVerifier.verify_legal_officer`). A valid token of the other role is a
   :class:`WrongRole` (PERMISSION_DENIED): the caller is known, but may not do this.

Verified claims are cached by the token's digest until the token expires: verification is
the expensive part of a request, and a session sends the same token many times.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import jwt
from jwt.exceptions import (
    DecodeError,
    InvalidAudienceError,
    InvalidIssuerError,
    InvalidSignatureError,
    MissingRequiredClaimError,
    PyJWTError,
)

from comity.core import refusals
from comity.core.errors import NotFound, PermissionDenied, Unauthenticated
from comity.core.federation import Federation, Investigator, IssuerKey, LegalOfficer, TokenIssuer

__all__ = [
    "ALLOWED_ALGORITHMS",
    "TokenError",
    "TokenVerifier",
    "VerifiedOfficer",
    "VerifiedToken",
    "WrongRole",
    "bearer_token",
]

ALLOWED_ALGORITHMS = frozenset({"EdDSA", "ES256"})
MAX_TOKEN_BYTES = 8192
_REQUIRED_CLAIMS = ["iss", "sub", "aud", "exp", "iat"]


_BASIS = "Prüm Decision 2008/615 art. 30 (the officer who searched)"


def _check(
    code: str, message: str, status: grpc.StatusCode = grpc.StatusCode.UNAUTHENTICATED
) -> refusals.Check:
    return refusals.Check(code, "AUDIT_FIELDS", status, message, _BASIS)


refusals.register(
    _check("TOKEN_MISSING", "no bearer token; send 'authorization: Bearer <JWT>' metadata with the call"),
    _check("TOKEN_MALFORMED", "the bearer token is not a well-formed compact JWS"),
    _check("TOKEN_ALGORITHM", "the token's algorithm is not allowed; only EdDSA and ES256 are"),
    _check("TOKEN_KEY", "the token's issuer or signing key is not one the federation trusts"),
    _check("TOKEN_SIGNATURE", "the token's signature does not verify with its issuer's key"),
    _check("TOKEN_AUDIENCE", "the token is not for this service's audience"),
    _check("TOKEN_CLAIMS", "the token lacks a required claim (iss, sub, aud, exp, iat) or one is mistyped"),
    _check("TOKEN_EXPIRED", "the token has expired; get a fresh token from your identity provider"),
    _check(
        "TOKEN_NOT_YET_VALID",
        "the token is not valid yet (nbf or iat after the gateway's clock): the clocks of the identity "
        "provider and the gateway differ; set both by NTP",
    ),
    _check("TOKEN_LIFETIME", "the token lives longer than the federation allows"),
    _check(
        "TOKEN_SUBJECT", "the token's subject is not registered with the issuer's agency in the federation"
    ),
    _check(
        "TOKEN_ROLE",
        "the token's subject is registered, but not in the role this call needs",
        grpc.StatusCode.PERMISSION_DENIED,
    ),
)


class TokenError(Unauthenticated):
    """A bearer token is missing or fails a check; the message names the check, never the token.

    ``check`` is the stable check code (``TOKEN_EXPIRED``, ...), carried as its violation.
    """

    def __init__(self, message: str, *, check: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint, violations=[refusals.violation(check)])
        self.check = check


class WrongRole(PermissionDenied):
    """A valid token whose subject is registered, but not in the role the call needs."""

    def __init__(self, message: str) -> None:
        super().__init__(message, violations=[refusals.violation("TOKEN_ROLE")])


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """What a verified token establishes: who the investigator is, for whom, until when."""

    subject: str
    issuer: str
    agency: str
    country: str
    audience: str
    issued_at: datetime
    expires_at: datetime
    investigator: Investigator
    token_id: str = ""


@dataclass(frozen=True, slots=True)
class VerifiedOfficer:
    """What a verified legal officer's token establishes."""

    subject: str
    issuer: str
    agency: str
    country: str
    issued_at: datetime
    expires_at: datetime
    officer: LegalOfficer


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    """The token of the ``authorization: Bearer <token>`` gRPC metadata entry; raises :class:`TokenError`."""
    for key, value in metadata or ():
        if key.lower() != "authorization":
            continue
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
        scheme, _, token = text.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        raise TokenError("the authorization metadata is not 'Bearer <token>'", check="TOKEN_MALFORMED")
    raise TokenError(
        "no bearer token",
        hint="send 'authorization: Bearer <JWT>' metadata with the call",
        check="TOKEN_MISSING",
    )


def _timestamp(claims: dict[str, Any], name: str) -> int | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenError(f"token claim {name!r} must be a number of seconds", check="TOKEN_CLAIMS")
    return int(value)


class TokenVerifier:
    """Verifies bearer tokens for one audience (the gateway) and caches the results."""

    def __init__(
        self,
        federation: Federation,
        *,
        audience: str,
        leeway: timedelta = timedelta(seconds=30),
        max_lifetime: timedelta = timedelta(hours=12),
        cache_size: int = 10_000,
    ) -> None:
        self._federation = federation
        self._audience = audience
        self._leeway = int(leeway.total_seconds())
        self._max_lifetime = int(max_lifetime.total_seconds())
        self._cache: OrderedDict[bytes, VerifiedToken | VerifiedOfficer] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def verify(self, token: str, *, now: datetime) -> VerifiedToken:
        """Run every check on an investigator's ``token`` at time ``now``.

        Raises :class:`TokenError` (UNAUTHENTICATED), or :class:`WrongRole` when the token is
        a legal officer's.
        """
        self._check_present(token)
        key = b"i" + hashlib.sha256(token.encode()).digest()
        cached = self._cached(key, now)
        if cached is not None:
            assert isinstance(cached, VerifiedToken)
            return cached
        issuer, claims, issued_at, expires_at = self._checked_claims(token, now)
        investigator = self._check_investigator(claims["sub"], issuer)
        verified = VerifiedToken(
            subject=investigator.id,
            issuer=issuer.issuer,
            agency=issuer.agency,
            country=investigator.country,
            audience=self._audience,
            issued_at=datetime.fromtimestamp(issued_at, UTC),
            expires_at=datetime.fromtimestamp(expires_at, UTC),
            investigator=investigator,
            token_id=str(claims.get("jti", "")),
        )
        self._remember(key, verified)
        return verified

    def verify_legal_officer(self, token: str, *, now: datetime) -> VerifiedOfficer:
        """Run every check on a legal officer's ``token`` at time ``now``.

        Raises :class:`TokenError` (UNAUTHENTICATED), or :class:`WrongRole` when the token is
        an investigator's: investigators may not read the log's entries.
        """
        self._check_present(token)
        key = b"o" + hashlib.sha256(token.encode()).digest()
        cached = self._cached(key, now)
        if cached is not None:
            assert isinstance(cached, VerifiedOfficer)
            return cached
        issuer, claims, issued_at, expires_at = self._checked_claims(token, now)
        officer = self._check_officer(claims["sub"], issuer)
        verified = VerifiedOfficer(
            subject=officer.id,
            issuer=issuer.issuer,
            agency=issuer.agency,
            country=officer.country,
            issued_at=datetime.fromtimestamp(issued_at, UTC),
            expires_at=datetime.fromtimestamp(expires_at, UTC),
            officer=officer,
        )
        self._remember(key, verified)
        return verified

    def _checked_claims(self, token: str, now: datetime) -> tuple[TokenIssuer, dict[str, Any], int, int]:
        """Checks 2 to 5, the same for every role."""
        header = self._check_header(token)
        issuer, jwk = self._issuer_key(token, header)
        claims = self._check_signature(token, issuer, jwk)
        issued_at, expires_at = self._check_times(claims, now)
        return issuer, claims, issued_at, expires_at

    # ------------------------------------------------------------------ the checks, in order

    @staticmethod
    def _check_present(token: str) -> None:
        if not token:
            raise TokenError(
                "no bearer token",
                hint="send 'authorization: Bearer <JWT>' with the call",
                check="TOKEN_MISSING",
            )
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenError(f"bearer token is longer than {MAX_TOKEN_BYTES} bytes", check="TOKEN_MALFORMED")
        if token.count(".") != 2:
            raise TokenError(
                "bearer token is not a compact JWS (header.payload.signature)", check="TOKEN_MALFORMED"
            )

    @staticmethod
    def _check_header(token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except PyJWTError:
            raise TokenError(
                "bearer token header is not valid base64url JSON", check="TOKEN_MALFORMED"
            ) from None
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise TokenError(
                f"token algorithm {alg!r} is not allowed; only EdDSA and ES256 are", check="TOKEN_ALGORITHM"
            )
        if not isinstance(header.get("kid"), str) or not header["kid"]:
            raise TokenError("token header names no key ('kid')", check="TOKEN_MALFORMED")
        return header

    def _issuer_key(self, token: str, header: dict[str, Any]) -> tuple[TokenIssuer, IssuerKey]:
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except PyJWTError:
            raise TokenError(
                "bearer token payload is not valid base64url JSON", check="TOKEN_MALFORMED"
            ) from None
        iss = unverified.get("iss")
        if not isinstance(iss, str) or not iss:
            raise TokenError("token has no issuer ('iss')", check="TOKEN_CLAIMS")
        try:
            issuer = self._federation.issuer(iss)
            jwk = issuer.key(header["kid"])
        except NotFound as exc:
            raise TokenError(exc.message, check="TOKEN_KEY") from None
        if jwk.algorithm != header["alg"]:
            raise TokenError(
                f"token algorithm {header['alg']!r} does not match its key's ({jwk.algorithm})",
                check="TOKEN_KEY",
            )
        return issuer, jwk

    def _check_signature(self, token: str, issuer: TokenIssuer, jwk: IssuerKey) -> dict[str, Any]:
        # Times are checked against the injected `now` below, not pyjwt's clock.
        options: dict[str, Any] = {
            "require": _REQUIRED_CLAIMS,
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
        }
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                jwk.public_key,
                algorithms=[jwk.algorithm],
                audience=self._audience,
                issuer=issuer.issuer,
                options=options,  # type: ignore[arg-type]  # pyjwt's TypedDict is narrower than its API
            )
        except InvalidSignatureError:
            raise TokenError(
                "token signature does not verify with the issuer's key", check="TOKEN_SIGNATURE"
            ) from None
        except InvalidAudienceError:
            raise TokenError(
                f"token is not for this audience ({self._audience!r})", check="TOKEN_AUDIENCE"
            ) from None
        except InvalidIssuerError:
            raise TokenError("token issuer does not match", check="TOKEN_KEY") from None
        except MissingRequiredClaimError as exc:
            raise TokenError(f"token lacks the required claim {exc.claim!r}", check="TOKEN_CLAIMS") from None
        except (DecodeError, PyJWTError):
            raise TokenError("token is malformed (not a valid JWS or JWT)", check="TOKEN_MALFORMED") from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise TokenError("token subject ('sub') must be a non-empty string", check="TOKEN_CLAIMS")
        return claims

    def _check_times(self, claims: dict[str, Any], now: datetime) -> tuple[int, int]:
        t = int(now.timestamp())
        exp, iat, nbf = (_timestamp(claims, n) for n in ("exp", "iat", "nbf"))
        assert exp is not None and iat is not None  # required claims, checked above
        if t > exp + self._leeway:
            raise TokenError(
                "token has expired",
                hint="get a fresh token from your identity provider",
                check="TOKEN_EXPIRED",
            )
        if nbf is not None and nbf > t + self._leeway:
            raise TokenError(
                f"token is not valid yet ('nbf' is {nbf - t} s after the gateway's clock)",
                hint=f"the clocks of the identity provider and the gateway differ by about {nbf - t} s; "
                "set both by NTP",
                check="TOKEN_NOT_YET_VALID",
            )
        if iat > t + self._leeway:
            raise TokenError(
                f"token was issued in the future ('iat' is {iat - t} s after the gateway's clock)",
                hint=f"the clocks of the identity provider and the gateway differ by about {iat - t} s; "
                "set both by NTP",
                check="TOKEN_NOT_YET_VALID",
            )
        if exp - iat > self._max_lifetime:
            raise TokenError(
                f"token lives longer than the allowed {self._max_lifetime} seconds", check="TOKEN_LIFETIME"
            )
        return iat, exp

    def _check_investigator(self, subject: str, issuer: TokenIssuer) -> Investigator:
        try:
            investigator = self._federation.investigator(subject)
        except NotFound:
            if self._is_officer(subject):
                raise WrongRole(
                    f"{subject!r} is a legal officer; only registered investigators may submit queries"
                ) from None
            raise TokenError(
                f"token subject {subject!r} is not a registered investigator", check="TOKEN_SUBJECT"
            ) from None
        self._check_agency(subject, investigator.agency, issuer)
        return investigator

    def _check_officer(self, subject: str, issuer: TokenIssuer) -> LegalOfficer:
        try:
            officer = self._federation.legal_officer(subject)
        except NotFound:
            if self._is_investigator(subject):
                raise WrongRole(
                    f"{subject!r} is an investigator; only legal officers registered in the "
                    "federation file may read the audit log's entries"
                ) from None
            raise TokenError(
                f"token subject {subject!r} is not a registered legal officer", check="TOKEN_SUBJECT"
            ) from None
        self._check_agency(subject, officer.agency, issuer)
        return officer

    @staticmethod
    def _check_agency(subject: str, agency: str, issuer: TokenIssuer) -> None:
        if agency != issuer.agency:
            raise TokenError(
                f"token subject {subject!r} is registered with {agency}, "
                f"not with the issuer's agency {issuer.agency}",
                check="TOKEN_SUBJECT",
            )

    def _is_officer(self, subject: str) -> bool:
        try:
            self._federation.legal_officer(subject)
        except NotFound:
            return False
        return True

    def _is_investigator(self, subject: str) -> bool:
        try:
            self._federation.investigator(subject)
        except NotFound:
            return False
        return True

    # ------------------------------------------------------------------ the cache

    def _cached(self, key: bytes, now: datetime) -> VerifiedToken | VerifiedOfficer | None:
        with self._lock:
            hit = self._cache.get(key)
            if hit is None:
                return None
            leeway = timedelta(seconds=self._leeway)
            if now > hit.expires_at + leeway or now + leeway < hit.issued_at:
                del self._cache[key]
                return None
            self._cache.move_to_end(key)
            return hit

    def _remember(self, key: bytes, verified: VerifiedToken | VerifiedOfficer) -> None:
        with self._lock:
            self._cache[key] = verified
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
