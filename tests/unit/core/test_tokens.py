"""Bearer tokens of investigators and legal officers: every check refuses what it must, roles stay apart."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from comity.core.bootstrap import FederationLayout, init_federation, mint_token
from comity.core.federation import Federation
from comity.core.issuer import IssuerPrivateKey, jwk_thumbprint, load_issuer_key
from comity.core.tokens import (
    TokenError,
    TokenVerifier,
    VerifiedOfficer,
    VerifiedToken,
    WrongRole,
    bearer_token,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
AUD = "comity-gateway"
US_ISS = "https://id.fbi.example"
CA_ISS = "https://id.rcmp.example"
AGENT = "us.fbi/agent-1"
CONSTABLE = "ca.rcmp/constable-1"
US_OFFICER = "us.fbi/legal-1"
CA_OFFICER = "ca.rcmp/legal-1"


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> FederationLayout:
    return init_federation(
        tmp_path_factory.mktemp("fed"), gateway_port=1, countries={"US": 2, "CA": 3}, now=NOW
    )


@pytest.fixture(scope="module")
def fed(layout: FederationLayout) -> Federation:
    return Federation.load(layout.federation_file)


@pytest.fixture(scope="module")
def us_key(layout: FederationLayout) -> IssuerPrivateKey:
    return load_issuer_key(layout.agencies["us.fbi"].issuer_key)


@pytest.fixture(scope="module")
def ca_key(layout: FederationLayout) -> IssuerPrivateKey:
    return load_issuer_key(layout.agencies["ca.rcmp"].issuer_key)


@pytest.fixture
def verifier(fed: Federation) -> TokenVerifier:
    return TokenVerifier(fed, audience=AUD)


def token(key: IssuerPrivateKey, **kw: Any) -> str:
    args: dict[str, Any] = {
        "issuer": US_ISS, "subject": AGENT, "audience": AUD, "ttl": timedelta(minutes=15), "now": NOW,
    }  # fmt: skip
    args.update(kw)
    return mint_token(key, **args)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(header: dict[str, Any], claims: dict[str, Any], sign: Any = None) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    sig = sign(signing_input.encode()) if sign else b""
    return f"{signing_input}.{_b64(sig)}"


def _claims(**kw: Any) -> dict[str, Any]:
    t = int(NOW.timestamp())
    return {"iss": US_ISS, "sub": AGENT, "aud": AUD, "iat": t, "nbf": t, "exp": t + 600, **kw}


# ---------------------------------------------------------------------- accepted


@pytest.mark.parametrize("agency", ["us.fbi", "ca.rcmp"])
def test_valid_tokens_of_both_algorithms_verify(
    verifier: TokenVerifier, us_key: IssuerPrivateKey, ca_key: IssuerPrivateKey, agency: str
) -> None:
    if agency == "us.fbi":
        v = verifier.verify(token(us_key), now=NOW + timedelta(minutes=1))
        assert (v.subject, v.agency, v.country, v.issuer) == (AGENT, "us.fbi", "US", US_ISS)
    else:
        v = verifier.verify(token(ca_key, issuer=CA_ISS, subject=CONSTABLE), now=NOW)
        assert (v.subject, v.agency, v.country) == (CONSTABLE, "ca.rcmp", "CA")
    assert isinstance(v, VerifiedToken)
    assert v.expires_at == NOW + timedelta(minutes=15)
    assert v.investigator.key.key_id == v.subject


def test_leeway_tolerates_small_clock_skew(verifier: TokenVerifier, us_key: IssuerPrivateKey) -> None:
    verifier.verify(token(us_key, now=NOW + timedelta(seconds=20)), now=NOW)
    verifier.verify(token(us_key), now=NOW + timedelta(minutes=15, seconds=20))


def test_cached_tokens_still_expire(verifier: TokenVerifier, us_key: IssuerPrivateKey) -> None:
    t = token(us_key)
    first = verifier.verify(t, now=NOW)
    assert verifier.verify(t, now=NOW + timedelta(minutes=5)) is first  # served from the cache
    with pytest.raises(TokenError, match="expired"):
        verifier.verify(t, now=NOW + timedelta(hours=1))


def test_the_cache_is_bounded(fed: Federation, us_key: IssuerPrivateKey) -> None:
    small = TokenVerifier(fed, audience=AUD, cache_size=2)
    tokens = [token(us_key) for _ in range(3)]  # distinct jti, so distinct tokens
    results = [small.verify(t, now=NOW) for t in tokens]
    assert small.verify(tokens[2], now=NOW) is results[2]
    assert small.verify(tokens[0], now=NOW) is not results[0]  # evicted, verified again


def test_bearer_token_reads_grpc_metadata() -> None:
    assert bearer_token([("x-other", "1"), ("authorization", "Bearer abc.def.ghi")]) == "abc.def.ghi"
    assert bearer_token([("Authorization", b"bearer abc.def.ghi")]) == "abc.def.ghi"


# ---------------------------------------------------------------------- refused


@pytest.mark.parametrize("metadata", [None, [], [("x-other", "1")]])
def test_no_token_in_metadata(metadata: Any) -> None:
    with pytest.raises(TokenError, match="no bearer token"):
        bearer_token(metadata)


def test_basic_auth_is_not_a_bearer_token() -> None:
    with pytest.raises(TokenError, match="not 'Bearer"):
        bearer_token([("authorization", "Basic dXNlcjpwdw==")])


@pytest.mark.parametrize(
    ("bad", "why"), [("", "no bearer token"), ("abc", "compact JWS"), ("a" * 9000, "longer")]
)
def test_empty_or_malformed_token(verifier: TokenVerifier, bad: str, why: str) -> None:
    with pytest.raises(TokenError, match=why):
        verifier.verify(bad, now=NOW)


def test_expired(verifier: TokenVerifier, us_key: IssuerPrivateKey) -> None:
    with pytest.raises(TokenError, match="expired"):
        verifier.verify(token(us_key), now=NOW + timedelta(minutes=16))


def test_not_yet_valid(verifier: TokenVerifier, us_key: IssuerPrivateKey) -> None:
    t = token(us_key, extra_claims={"nbf": int((NOW + timedelta(minutes=5)).timestamp())})
    with pytest.raises(TokenError, match="not valid yet"):
        verifier.verify(t, now=NOW)


def test_issued_in_the_future(verifier: TokenVerifier, us_key: IssuerPrivateKey) -> None:
    with pytest.raises(TokenError, match="issued in the future"):
        t = token(us_key, now=NOW + timedelta(minutes=5), extra_claims={"nbf": int(NOW.timestamp())})
        verifier.verify(t, now=NOW)


def test_too_long_lived(verifier: TokenVerifier, us_key: IssuerPrivateKey) -> None:
    with pytest.raises(TokenError, match="lives longer"):
        verifier.verify(token(us_key, ttl=timedelta(days=30)), now=NOW)


def test_unknown_issuer(verifier: TokenVerifier) -> None:
    rogue = Ed25519PrivateKey.generate()
    with pytest.raises(TokenError, match="not trusted"):
        verifier.verify(token(rogue, issuer="https://evil.example"), now=NOW)


def test_alg_none(verifier: TokenVerifier, us_key: IssuerPrivateKey) -> None:
    kid = jwk_thumbprint(us_key.public_key())
    with pytest.raises(TokenError, match="'none' is not allowed"):
        verifier.verify(_forge({"alg": "none", "kid": kid}, _claims()), now=NOW)


@pytest.mark.parametrize("encoding", ["pem", "raw"])
def test_hs256_signed_with_the_public_key_as_secret(
    verifier: TokenVerifier, us_key: IssuerPrivateKey, encoding: str
) -> None:
    public = us_key.public_key()
    secret = (
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        if encoding == "pem"
        else public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    kid = jwk_thumbprint(public)
    forged = _forge(
        {"alg": "HS256", "kid": kid}, _claims(), lambda m: hmac.new(secret, m, hashlib.sha256).digest()
    )
    with pytest.raises(TokenError, match="'HS256' is not allowed"):
        verifier.verify(forged, now=NOW)


def test_wrong_audience(verifier: TokenVerifier, us_key: IssuerPrivateKey) -> None:
    with pytest.raises(TokenError, match="not for this audience"):
        verifier.verify(token(us_key, audience="some-other-service"), now=NOW)


def test_unknown_kid(verifier: TokenVerifier, us_key: IssuerPrivateKey) -> None:
    with pytest.raises(TokenError, match="no key with kid"):
        verifier.verify(token(us_key, kid="rotated-away"), now=NOW)


def test_token_key_mismatch(verifier: TokenVerifier, us_key: IssuerPrivateKey) -> None:
    # Signed by an unregistered key under the registered key's kid.
    impostor = Ed25519PrivateKey.generate()
    with pytest.raises(TokenError, match="signature does not verify"):
        verifier.verify(token(impostor, kid=jwk_thumbprint(us_key.public_key())), now=NOW)


def test_header_algorithm_must_match_the_key(verifier: TokenVerifier, us_key: IssuerPrivateKey) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    t = token(ec_key, kid=jwk_thumbprint(us_key.public_key()))  # ES256 header, EdDSA key
    with pytest.raises(TokenError, match="does not match its key"):
        verifier.verify(t, now=NOW)


def test_tampered_payload(verifier: TokenVerifier, us_key: IssuerPrivateKey) -> None:
    header, _, sig = token(us_key).split(".")
    payload = _b64(json.dumps(_claims(sub=AGENT, exp=int(NOW.timestamp()) + 86000)).encode())
    with pytest.raises(TokenError, match="signature does not verify"):
        verifier.verify(f"{header}.{payload}.{sig}", now=NOW)


def test_missing_required_claim(verifier: TokenVerifier, us_key: IssuerPrivateKey) -> None:
    kid = jwk_thumbprint(us_key.public_key())
    assert isinstance(us_key, Ed25519PrivateKey)
    claims = _claims()
    del claims["exp"]
    with pytest.raises(TokenError, match="'exp'"):
        verifier.verify(_forge({"alg": "EdDSA", "kid": kid}, claims, us_key.sign), now=NOW)


def test_subject_not_registered(verifier: TokenVerifier, us_key: IssuerPrivateKey) -> None:
    with pytest.raises(TokenError, match="not a registered investigator"):
        verifier.verify(token(us_key, subject="us.fbi/agent-99"), now=NOW)


def test_subject_registered_with_another_agency(verifier: TokenVerifier, us_key: IssuerPrivateKey) -> None:
    # The FBI's identity provider vouching for an RCMP constable.
    with pytest.raises(TokenError, match=r"registered with ca\.rcmp"):
        verifier.verify(token(us_key, subject=CONSTABLE), now=NOW)


def test_errors_never_repeat_the_token(verifier: TokenVerifier, us_key: IssuerPrivateKey) -> None:
    t = token(us_key, audience="x")
    with pytest.raises(TokenError) as info:
        verifier.verify(t, now=NOW)
    assert t not in info.value.diagnostics()
    assert t.split(".")[2] not in info.value.diagnostics()


# ---------------------------------------------------------------------- roles


def test_legal_officers_tokens_verify_for_reading_the_log(
    verifier: TokenVerifier, us_key: IssuerPrivateKey, ca_key: IssuerPrivateKey
) -> None:
    v = verifier.verify_legal_officer(token(us_key, subject=US_OFFICER), now=NOW)
    assert isinstance(v, VerifiedOfficer)
    assert (v.subject, v.agency, v.country) == (US_OFFICER, "us.fbi", "US")
    w = verifier.verify_legal_officer(token(ca_key, issuer=CA_ISS, subject=CA_OFFICER), now=NOW)
    assert (w.subject, w.country) == (CA_OFFICER, "CA")


def test_an_investigators_token_does_not_open_the_log(
    verifier: TokenVerifier, us_key: IssuerPrivateKey
) -> None:
    t = token(us_key)
    verifier.verify(t, now=NOW)  # cached as an investigator's: the cache must not leak into the other role
    with pytest.raises(WrongRole, match="is an investigator"):
        verifier.verify_legal_officer(t, now=NOW)


def test_a_legal_officers_token_cannot_submit_queries(
    verifier: TokenVerifier, us_key: IssuerPrivateKey
) -> None:
    t = token(us_key, subject=US_OFFICER)
    verifier.verify_legal_officer(t, now=NOW)
    with pytest.raises(WrongRole, match="is a legal officer"):
        verifier.verify(t, now=NOW)


def test_officer_tokens_get_every_check(verifier: TokenVerifier, us_key: IssuerPrivateKey) -> None:
    with pytest.raises(TokenError, match="expired"):
        verifier.verify_legal_officer(token(us_key, subject=US_OFFICER), now=NOW + timedelta(hours=1))
    with pytest.raises(TokenError, match="not a registered legal officer"):
        verifier.verify_legal_officer(token(us_key, subject="us.fbi/legal-99"), now=NOW)
    with pytest.raises(TokenError, match=r"registered with ca\.rcmp"):
        verifier.verify_legal_officer(token(us_key, subject=CA_OFFICER), now=NOW)
    forged = _forge({"alg": "none", "kid": "x"}, _claims(sub=US_OFFICER))
    with pytest.raises(TokenError, match="not allowed"):
        verifier.verify_legal_officer(forged, now=NOW)
