from __future__ import annotations

import base64
import json
import warnings
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from jwt.warnings import InsecureKeyLengthWarning

from medtwin.errors import AuthenticationError, ConfigurationError
from medtwin.security import ROLE_SCOPES, Keyring, Principal, Role, TokenIssuer, parse_scopes

KEY = Keyring.from_bytes(bytes(range(32))).token_key
OTHER_KEY = Keyring.from_bytes(bytes(32)).token_key
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DOCTOR = Principal("u-1", "dr.who", Role.clinician, ROLE_SCOPES[Role.clinician])
DEVICE = Principal(
    "u-9", "cgm-7", Role.device, ROLE_SCOPES[Role.device], patient_id="p1", device_id="cgm-7"
)


@pytest.fixture
def issuer():
    return TokenIssuer(KEY, ttl_s=600)


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _claims(**extra):
    iat = int(T0.timestamp())
    claims = {
        "iss": "medtwin",
        "aud": "medtwin",
        "sub": "u-1",
        "name": "dr.who",
        "role": "clinician",
        "scope": "user/*.cruds",
        "iat": iat,
        "exp": iat + 600,
        "jti": "j1",
    }
    claims.update(extra)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.mark.parametrize("principal", [DOCTOR, DEVICE])
def test_round_trip(issuer, principal):
    assert issuer.verify(issuer.issue(principal, now=T0), now=T0) == principal


def test_claims_written(issuer):
    token = issuer.issue(DEVICE, now=T0)
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(
        token, KEY, algorithms=["HS256"], audience="medtwin", options={"verify_exp": False}
    )
    assert header["alg"] == "HS256"
    assert claims["sub"] == "u-9" and claims["name"] == "cgm-7" and claims["role"] == "device"
    assert claims["scope"] == "patient/Observation.c"
    assert claims["patient"] == "p1" and claims["device"] == "cgm-7"
    assert claims["iss"] == "medtwin" and claims["aud"] == "medtwin"
    assert claims["exp"] - claims["iat"] == 600 and claims["iat"] == int(T0.timestamp())
    assert (
        claims["jti"]
        and claims["jti"]
        != jwt.decode(
            issuer.issue(DEVICE, now=T0),
            KEY,
            algorithms=["HS256"],
            audience="medtwin",
            options={"verify_exp": False},
        )["jti"]
    )


def test_verify_with_wall_clock():
    issuer = TokenIssuer(KEY)
    assert issuer.verify(issuer.issue(DOCTOR)) == DOCTOR


def test_expired(issuer):
    token = issuer.issue(DOCTOR, now=T0)
    assert issuer.verify(token, now=T0 + timedelta(seconds=599))
    assert issuer.verify(token, now=T0 + timedelta(seconds=604))  # within the 5 s leeway
    with pytest.raises(AuthenticationError, match="expired"):
        issuer.verify(token, now=T0 + timedelta(seconds=605))


def test_zero_leeway():
    issuer = TokenIssuer(KEY, ttl_s=600, leeway_s=0)
    token = issuer.issue(DOCTOR, now=T0)
    with pytest.raises(AuthenticationError, match="expired"):
        issuer.verify(token, now=T0 + timedelta(seconds=600))


def test_issued_in_the_future(issuer):
    token = issuer.issue(DOCTOR, now=T0 + timedelta(seconds=60))
    with pytest.raises(AuthenticationError, match="future"):
        issuer.verify(token, now=T0)


def test_not_before(issuer):
    token = jwt.encode(_claims(nbf=int(T0.timestamp()) + 60), KEY, algorithm="HS256")
    with pytest.raises(AuthenticationError, match="not valid yet"):
        issuer.verify(token, now=T0)


def test_signed_with_another_key(issuer):
    token = TokenIssuer(OTHER_KEY).issue(DOCTOR, now=T0)
    with pytest.raises(AuthenticationError, match="signature does not verify"):
        issuer.verify(token, now=T0)


def test_tampered_payload(issuer):
    header, _, sig = issuer.issue(DOCTOR, now=T0).split(".")
    forged = ".".join(
        [header, _b64(_claims(role="admin", scope="user/*.cruds system/*.cruds")), sig]
    )
    with pytest.raises(AuthenticationError, match="signature"):
        issuer.verify(forged, now=T0)


def test_alg_none(issuer):
    token = _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(_claims(role="admin")) + "."
    with pytest.raises(AuthenticationError, match="algorithm is not allowed"):
        issuer.verify(token, now=T0)


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_other_hmac_algorithms(issuer, alg):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)  # same key, longer hash
        token = jwt.encode(_claims(), KEY, algorithm=alg)
    with pytest.raises(AuthenticationError, match="algorithm is not allowed"):
        issuer.verify(token, now=T0)


def test_wrong_issuer_and_audience(issuer):
    with pytest.raises(AuthenticationError, match="issuer"):
        issuer.verify(jwt.encode(_claims(iss="evil"), KEY, algorithm="HS256"), now=T0)
    with pytest.raises(AuthenticationError, match="audience"):
        issuer.verify(jwt.encode(_claims(aud="other-app"), KEY, algorithm="HS256"), now=T0)
    other = TokenIssuer(KEY, audience="dashboard").issue(DOCTOR, now=T0)
    with pytest.raises(AuthenticationError, match="audience"):
        issuer.verify(other, now=T0)


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "iss", "aud"])
def test_required_claims(issuer, claim):
    token = jwt.encode(_claims(**{claim: None}), KEY, algorithm="HS256")
    with pytest.raises(AuthenticationError, match=f"required claim '{claim}'"):
        issuer.verify(token, now=T0)


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"exp": "tomorrow"}, "exp"),
        ({"iat": 1.5}, "iat"),
        ({"role": "superuser"}, "unknown role"),
        ({"role": None}, "role"),
        ({"scope": "user/*.everything"}, "invalid scope"),
        ({"scope": ["user/*.rs"]}, "scope"),
        ({"patient": 7}, "patient"),
        ({"name": 7}, "name"),
    ],
)
def test_bad_claims(issuer, extra, match):
    token = jwt.encode(_claims(**extra), KEY, algorithm="HS256")
    with pytest.raises(AuthenticationError, match=match):
        issuer.verify(token, now=T0)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "a.b", "Bearer x.y.z", "x" * 9000])
def test_malformed(issuer, token):
    with pytest.raises(AuthenticationError):
        issuer.verify(token, now=T0)


def test_error_messages_never_contain_the_token(issuer):
    good = issuer.issue(DOCTOR, now=T0)
    for bad in (good + "x", good, TokenIssuer(OTHER_KEY).issue(DOCTOR, now=T0)):
        with pytest.raises(AuthenticationError) as info:
            issuer.verify(bad, now=T0 + timedelta(days=1))
        text = str(info.value) + repr(info.value)
        assert bad not in text and bad.split(".")[2] not in text


def test_scopes_round_trip_in_canonical_form(issuer):
    p = Principal(
        "u2", "bob", Role.researcher, parse_scopes("user/Observation.read user/Patient.s")
    )
    assert issuer.verify(issuer.issue(p, now=T0), now=T0).scopes == p.scopes


@pytest.mark.parametrize(
    "kwargs",
    [
        {"key": bytes(16)},
        {"ttl_s": 0},
        {"ttl_s": float("inf")},
        {"leeway_s": 6},
        {"leeway_s": -1},
        {"issuer": ""},
    ],
)
def test_settings_are_validated(kwargs):
    args = {"key": KEY} | kwargs
    key = args.pop("key")
    with pytest.raises(ConfigurationError):
        TokenIssuer(key, **args)


def test_repr_hides_the_key(issuer):
    assert KEY.hex() not in repr(issuer) and "redacted" in repr(issuer)
