"""Access tokens: HS256 JWTs that carry a :class:`Principal`."""

from __future__ import annotations

import math
import secrets
from datetime import UTC, datetime
from typing import Any, final

import jwt

from medtwin.errors import AuthenticationError, ConfigurationError, ParameterError
from medtwin.security._roles import Principal, Role
from medtwin.security._scopes import format_scopes, parse_scopes

__all__ = ["TokenIssuer"]

_ALGORITHM = "HS256"
_REQUIRED = ("exp", "iat", "sub", "iss", "aud")
_MAX_TOKEN_CHARS = 8192
_MAX_LEEWAY_S = 5.0


def _timestamp(now: datetime | None) -> int:
    if now is None:
        now = datetime.now(UTC)
    elif now.utcoffset() is None:
        raise ParameterError(f"now must be a timezone-aware datetime; got {now!r}")
    return math.floor(now.timestamp())


@final
class TokenIssuer:
    """Issue and verify HS256 access tokens for one issuer and audience.

    Parameters
    ----------
    key
        The signing key, at least 32 bytes (:attr:`Keyring.token_key`).
    issuer, audience
        The ``iss`` and ``aud`` claims written and required.
    ttl_s
        Lifetime of an issued token in seconds.
    leeway_s
        Clock skew tolerated on ``exp``/``iat``/``nbf``, 0 to 5 seconds.

    >>> from datetime import UTC, datetime
    >>> from medtwin.security import ROLE_SCOPES, Principal, Role
    >>> issuer = TokenIssuer(bytes(32))
    >>> me = Principal("u1", "dr.who", Role.clinician, ROLE_SCOPES[Role.clinician])
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> issuer.verify(issuer.issue(me, now=t0), now=t0) == me
    True
    >>> issuer.verify(issuer.issue(me, now=t0), now=datetime(2026, 1, 2, tzinfo=UTC))
    Traceback (most recent call last):
    ...
    medtwin.errors.AuthenticationError: token has expired; sign in again
    """

    __slots__ = ("_key", "audience", "issuer", "leeway_s", "ttl_s")

    def __init__(
        self,
        key: bytes,
        *,
        issuer: str = "medtwin",
        audience: str = "medtwin",
        ttl_s: float = 3600,
        leeway_s: float = 5.0,
    ) -> None:
        if not isinstance(key, bytes | bytearray) or len(key) < 32:
            raise ConfigurationError(
                "TokenIssuer needs a key of at least 32 bytes (Keyring.token_key)"
            )
        if not (isinstance(ttl_s, int | float) and math.isfinite(ttl_s) and ttl_s >= 1):
            raise ConfigurationError(
                f"ttl_s must be a finite number of seconds >= 1; got {ttl_s!r}"
            )
        if not (isinstance(leeway_s, int | float) and 0 <= leeway_s <= _MAX_LEEWAY_S):
            raise ConfigurationError(f"leeway_s must be between 0 and 5 seconds; got {leeway_s!r}")
        if not issuer or not audience:
            raise ConfigurationError("issuer and audience must be non-empty strings")
        self._key = bytes(key)
        self.issuer = issuer
        self.audience = audience
        self.ttl_s = ttl_s
        self.leeway_s = leeway_s

    def __repr__(self) -> str:
        return (
            f"TokenIssuer(<redacted>, issuer={self.issuer!r}, audience={self.audience!r}, "
            f"ttl_s={self.ttl_s!r})"
        )

    def issue(self, principal: Principal, *, now: datetime | None = None) -> str:
        """A signed token for ``principal``, valid for ``ttl_s`` seconds from ``now``."""
        if not isinstance(principal, Principal):
            raise ParameterError(f"issue() takes a Principal; got {type(principal).__name__}")
        iat = _timestamp(now)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": principal.subject,
            "name": principal.username,
            "role": str(principal.role),
            "scope": format_scopes(principal.scopes),
            "iat": iat,
            "exp": iat + math.ceil(self.ttl_s),
            "jti": secrets.token_urlsafe(16),
        }
        if principal.patient_id is not None:
            claims["patient"] = principal.patient_id
        if principal.device_id is not None:
            claims["device"] = principal.device_id
        return jwt.encode(claims, self._key, algorithm=_ALGORITHM, headers={"typ": "JWT"})

    def verify(self, token: str, *, now: datetime | None = None) -> Principal:
        """The principal a token carries; raises ``AuthenticationError`` if it is not valid now.

        Rejected: a malformed token, any algorithm but HS256 (``alg: none`` included), another
        key's signature, another issuer or audience, a missing ``exp``/``iat``/``sub``/``iss``/``aud``,
        an expired token, or one issued in the future.
        """
        if not isinstance(token, str) or not token:
            raise AuthenticationError("no bearer token given")
        if len(token) > _MAX_TOKEN_CHARS:
            raise AuthenticationError("token is too long to be a medtwin token")
        ts = _timestamp(now)
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[_ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                # Times are checked below against `now`, one code path whether or not it is given.
                options={
                    "require": list(_REQUIRED),
                    "verify_signature": True,
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidAlgorithmError as exc:
            raise AuthenticationError(
                f"token algorithm is not allowed (only {_ALGORITHM})"
            ) from exc
        except jwt.InvalidSignatureError as exc:
            raise AuthenticationError(
                "token signature does not verify (tampered, or signed with another key)"
            ) from exc
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationError(f"token lacks the required claim {exc.claim!r}") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthenticationError(
                f"token is not for this audience (expected {self.audience!r})"
            ) from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthenticationError(
                f"token is not from this issuer (expected {self.issuer!r})"
            ) from exc
        except jwt.DecodeError as exc:
            raise AuthenticationError("token is malformed (not a signed JWT)") from exc
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"token is not valid ({type(exc).__name__})") from exc
        self._check_times(claims, ts)
        return _principal(claims)

    def _check_times(self, claims: dict[str, Any], ts: int) -> None:
        for name in ("exp", "iat", "nbf"):
            value = claims.get(name)
            if name in claims and (isinstance(value, bool) or not isinstance(value, int)):
                raise AuthenticationError(f"token claim {name!r} must be an integer timestamp")
        if ts >= claims["exp"] + self.leeway_s:
            raise AuthenticationError("token has expired; sign in again")
        if claims["iat"] > ts + self.leeway_s:
            raise AuthenticationError("token was issued in the future; check the clocks")
        if "nbf" in claims and claims["nbf"] > ts + self.leeway_s:
            raise AuthenticationError("token is not valid yet (nbf)")


def _text(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise AuthenticationError(f"token claim {name!r} must be a non-empty string")
    return value


def _principal(claims: dict[str, Any]) -> Principal:
    role = _text(claims, "role")
    if role not in Role.__members__:
        raise AuthenticationError(f"token names an unknown role {role[:40]!r}")
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise AuthenticationError("token claim 'scope' must be a space-separated string")
    username = claims.get("name", "")
    if not isinstance(username, str):
        raise AuthenticationError("token claim 'name' must be a string")
    return Principal(
        subject=_text(claims, "sub"),
        username=username,
        role=Role(role),
        scopes=parse_scopes(scope),
        patient_id=_text(claims, "patient") if "patient" in claims else None,
        device_id=_text(claims, "device") if "device" in claims else None,
    )
