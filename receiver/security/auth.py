"""
Stream authentication: who may open a stream, decided before any audio is kept.

Pure: no I/O, no asyncio, no logging. The server hands in what the upgrade
request carried (path, headers, peer address) and the time; this module says
yes, no (with an HTTP status and a short reason code), or "yes, if the start
message carries a valid token". Every secret comparison is constant time, and
no reason, message or repr produced here contains a secret or a token.

Mechanisms (any that is configured may authenticate a stream):

- **Stream tokens** (``auth_secrets``): an HMAC-SHA256 token bound to one call
  and an expiry, ``v1.<expires>.<call id, base64url>.<signature, base64url>``.
  It travels in the stream URL's query (``sign_stream_url``; checked at the
  handshake) or, for platforms that strip query strings (Twilio), in the start
  message's custom parameters (checked at ``start``, before any media is kept).
  The same call and expiry always give the same token, so the same URL, so
  ``stop_stream`` can still match it. The call id inside the token must match
  the stream's call id (``X-MiniVoice-Call-Id`` at the handshake, the start
  message's call id at ``start``): a token replayed for another call is
  refused.
- **Bearer or basic credentials** on the upgrade (``Authorization`` header).
- **The carriers' signatures** (``security/signatures.py``), each validated
  whenever it is present and configured: Plivo's ``X-Plivo-Signature-V3``
  (``plivo_auth_token``), a Vonage JWT as the bearer token
  (``vonage_signature_secret``), Genesys AudioHook's HTTP message signature
  with ``X-API-KEY`` (``audiohook_api_keys``).
- **Twilio's request signature** (``X-Twilio-Signature``), validated whenever it
  is present: ``base64(HMAC-SHA1(auth token, wss URL))`` over the public URL,
  tried with and without ``:443`` (stream-formats §1.6).
- **IP allow-list** (CIDRs): a *necessary* condition when configured. A
  forwarded address (``X-Forwarded-For``) is believed only from a configured
  trusted proxy.

A credential that is presented and configured but wrong refuses the stream
even if another one is right (fail closed).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from receiver.errors import InvalidValue, ReceiverError, StreamRefused
from receiver.security.networks import Network, client_address, parse_networks, within
from receiver.security.signatures import (
    AUDIOHOOK_HEADERS,
    PLIVO_NONCE_HEADER,
    PLIVO_SIGNATURE_HEADER,
    SignatureInvalid,
    looks_like_jwt,
    parse_api_keys,
    verify_audiohook,
    verify_plivo,
    verify_vonage_jwt,
)

if TYPE_CHECKING:
    from receiver.config import Settings

TOKEN_VERSION: Final = "v1"
DEFAULT_TOKEN_PARAM: Final = "token"
MAX_TOKEN_LENGTH: Final = 1024
CALL_ID_HEADER: Final = "x-minivoice-call-id"
TWILIO_SIGNATURE_HEADER: Final = "x-twilio-signature"
FORWARDED_FOR_HEADER: Final = "x-forwarded-for"
# The request headers ``check_handshake`` reads (lower case).
_B64URL: Final = re.compile(r"[A-Za-z0-9_-]+")
HEADERS: Final = frozenset(
    {
        "authorization",
        "host",
        CALL_ID_HEADER,
        TWILIO_SIGNATURE_HEADER,
        FORWARDED_FOR_HEADER,
        PLIVO_SIGNATURE_HEADER,
        PLIVO_NONCE_HEADER,
        *AUDIOHOOK_HEADERS,
    }
)


class AuthRejected(ReceiverError):
    """The upgrade request is refused: answer with ``status``; ``reason`` is a short code, never a secret."""

    def __init__(self, status: HTTPStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class TokenInvalid(ReceiverError):
    """A stream token is malformed, forged, expired or for another call (``reason`` says which)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- stream tokens ---------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    if not text or len(text) % 4 == 1 or not _B64URL.fullmatch(text):
        raise TokenInvalid("malformed")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str | bytes, call_id: str, expires_at: int) -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    message = f"{TOKEN_VERSION}\n{call_id}\n{expires_at}".encode()
    return hmac.new(key, message, hashlib.sha256).digest()


def stream_token(*, call_id: str, secret: str | bytes, expires_at: int) -> str:
    """The token for ``call_id`` valid until ``expires_at`` (Unix seconds); deterministic."""
    if not secret:
        raise InvalidValue("secret must not be empty")
    expires_at = int(expires_at)
    return ".".join(
        (TOKEN_VERSION, str(expires_at), _b64url(call_id.encode()), _b64url(_mac(secret, call_id, expires_at)))
    )


def sign_stream_url(
    url: str, *, call_id: str, secret: str | bytes, expires_at: int, param: str = DEFAULT_TOKEN_PARAM
) -> str:
    """Add a stream token for ``call_id`` to ``url``'s query (replacing any token already there).

    Deterministic: the same URL, call and expiry give the same signed URL, so a
    later ``stop_stream`` naming it still matches the stream.
    """
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != param]
    query.append((param, stream_token(call_id=call_id, secret=secret, expires_at=expires_at)))
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    call_id: str
    expires_at: int


def verify_stream_token(
    token: str, *, secrets: Sequence[str | bytes], now: float, call_id: str | None = None
) -> VerifiedToken:
    """Check a stream token against every secret (rotation) and the clock.

    Args:
        token: The token as received.
        secrets: The accepted secrets (the first signs new tokens).
        now: The current Unix time.
        call_id: When given, the call the token must be bound to.

    Raises:
        TokenInvalid: ``reason`` is ``malformed``, ``bad_signature``, ``expired`` or ``wrong_call``.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise TokenInvalid("malformed")
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != TOKEN_VERSION or not parts[1].isascii() or not parts[1].isdigit():
        raise TokenInvalid("malformed")
    if len(parts[1]) > 12:
        raise TokenInvalid("malformed")
    expires_at = int(parts[1])
    try:
        token_call = _unb64url(parts[2]).decode("utf-8")
        signature = _unb64url(parts[3])
    except (binascii.Error, UnicodeDecodeError):
        raise TokenInvalid("malformed") from None
    good = False
    for secret in secrets:
        # Check every secret, so timing does not tell which one matched.
        good |= hmac.compare_digest(signature, _mac(secret, token_call, expires_at))
    if not good:
        raise TokenInvalid("bad_signature")
    if now > expires_at:
        raise TokenInvalid("expired")
    if call_id is not None and not hmac.compare_digest(token_call.encode(), call_id.encode()):
        raise TokenInvalid("wrong_call")
    return VerifiedToken(token_call, expires_at)


# Query parameter names that look like they carry a credential, whatever their case
# (``?TOKEN=``, ``?access_token=``, ``?X-Signature=``, ``?apiKey=``, ``?password=``).
_CREDENTIAL_NAME: Final = re.compile(r"token|secret|passw|pwd|key|sig|auth|cred|session|jwt|bearer", re.IGNORECASE)
# One of our stream tokens, wherever it appears (a path segment, another parameter's value).
_TOKEN_LIKE: Final = re.compile(r"v1\.\d{1,12}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
REDACTED: Final = "redacted"


def strip_token(url_or_path: str, param: str = DEFAULT_TOKEN_PARAM) -> str:
    """``url_or_path`` with every credential-looking value redacted (for logs).

    Redacted: the value of ``param`` and of any query parameter whose name
    looks like a credential (``token``, ``secret``, ``key``, ``sig``, ``auth``,
    ``password``, ... in any case), and anything shaped like a stream token,
    in the path or in any value.
    """
    path, sep, query = url_or_path.partition("?")
    path = _TOKEN_LIKE.sub(REDACTED, path)
    if not sep:
        return path
    lowered = param.lower()
    pairs = [
        (k, REDACTED if k.lower() == lowered or _CREDENTIAL_NAME.search(k) or _credential_value(v) else v)
        for k, v in parse_qsl(query, keep_blank_values=True)
    ]
    return path + "?" + urlencode(pairs)


def redact_url(url: str) -> str:
    """The URL without its password, for logs and errors."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    userinfo, _, host = rest.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}{':***' if ':' in userinfo else ''}@{host}"


def _credential_value(value: str) -> bool:
    """A value holding a stream token, or a ``name=value`` pair with a credential-looking name."""
    if _TOKEN_LIKE.search(value):
        return True
    name, sep, _ = value.rpartition("=")
    return bool(sep) and bool(_CREDENTIAL_NAME.search(name))


# -- Twilio's signature ----------------------------------------------------------


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str] | None = None) -> str:
    """``base64(HMAC-SHA1(auth_token, url + sorted name+value pairs))`` (Twilio's request signature)."""
    payload = url + "".join(k + v for k, v in sorted((params or {}).items()))
    return base64.b64encode(hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def _url_variants(url: str) -> list[str]:
    """The URL as given, without its port, and with the default TLS port (twilio-python tries both).

    Raises:
        ValueError: The URL's host or port is not valid (a bad ``Host`` header).
    """
    parts = urlsplit(url)
    parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0-65535
    variants = [url]
    if parts.hostname is None:
        return variants
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = userinfo + "@" if userinfo else ""
    without = urlunsplit(parts._replace(netloc=prefix + host))
    if parts.port is not None:
        variants.append(without)
    elif parts.scheme in ("wss", "https"):
        variants.append(urlunsplit(parts._replace(netloc=f"{prefix}{host}:443")))
    return variants


def verify_twilio_signature(auth_token: str, url: str, signature: str) -> bool:
    """True when ``signature`` signs ``url`` (with or without ``:443``) and no body parameters.

    Raises:
        ValueError: ``url`` has an invalid host or port.
    """
    good = False
    for candidate in _url_variants(url):
        good |= hmac.compare_digest(twilio_signature(auth_token, candidate).encode(), signature.encode())
    return good


def headers_from(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The headers ``check_handshake`` reads, lower-cased; repeated ones joined with ``, ``."""
    found: dict[str, list[str]] = {}
    for name, value in items:
        key = name.lower()
        if key in HEADERS:
            found.setdefault(key, []).append(value)
    return {key: ", ".join(values) for key, values in found.items()}


# -- the policy ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HandshakeResult:
    """What the handshake established about a stream."""

    method: str | None  # url_token, bearer, basic, twilio_signature, plivo_signature, ...; None: open or pending
    call_id: str | None = None  # the call a URL token is bound to
    pending_start: bool = False  # a valid token must come in the start message
    client: str | None = None
    reading: str | None = None  # where a signature's unconfirmed input was read (Plivo's signed URL)


@dataclass(frozen=True, slots=True)
class AuthPolicy:
    """Who may open a stream. Build with ``AuthPolicy.from_settings``; every field may be empty."""

    secrets: tuple[str, ...] = field(default=(), repr=False)
    token_param: str = DEFAULT_TOKEN_PARAM
    start_token: bool = True
    bearer_tokens: tuple[str, ...] = field(default=(), repr=False)
    basic_users: tuple[str, ...] = field(default=(), repr=False)  # "user:password"
    twilio_auth_token: str = field(default="", repr=False)
    plivo_auth_token: str = field(default="", repr=False)
    vonage_signature_secret: str = field(default="", repr=False)
    audiohook_keys: Mapping[str, bytes] = field(default_factory=dict, repr=False)  # client secret by API key
    public_base_url: str = ""
    allow: tuple[Network, ...] = ()
    trusted_proxies: tuple[Network, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthPolicy:
        return cls(
            secrets=tuple(settings.auth_secrets),
            token_param=settings.auth_token_param,
            start_token=settings.auth_start_token,
            bearer_tokens=tuple(settings.auth_bearer_tokens),
            basic_users=tuple(settings.auth_basic_users),
            twilio_auth_token=settings.twilio_auth_token,
            plivo_auth_token=settings.plivo_auth_token,
            vonage_signature_secret=settings.vonage_signature_secret,
            audiohook_keys=parse_api_keys(settings.audiohook_api_keys),
            public_base_url=settings.public_base_url,
            allow=parse_networks(settings.ip_allowlist),
            trusted_proxies=parse_networks(settings.trusted_proxies),
        )

    @property
    def credentials_required(self) -> bool:
        return bool(
            self.secrets
            or self.bearer_tokens
            or self.basic_users
            or self.twilio_auth_token
            or self.plivo_auth_token
            or self.vonage_signature_secret
            or self.audiohook_keys
        )

    @property
    def enabled(self) -> bool:
        """False when nothing at all is configured: every stream is accepted."""
        return self.credentials_required or bool(self.allow)

    def modes(self) -> list[str]:
        """The configured mechanisms, by name (for the start-up log)."""
        modes = []
        if self.secrets:
            modes.append("url_token")
            if self.start_token:
                modes.append("start_token")
        if self.bearer_tokens:
            modes.append("bearer")
        if self.basic_users:
            modes.append("basic")
        if self.twilio_auth_token:
            modes.append("twilio_signature")
        if self.plivo_auth_token:
            modes.append("plivo_signature")
        if self.vonage_signature_secret:
            modes.append("vonage_jwt")
        if self.audiohook_keys:
            modes.append("audiohook_signature")
        if self.allow:
            modes.append("ip_allowlist")
        return modes

    def check_handshake(
        self, *, path: str, headers: Mapping[str, str], peer: str | None, now: float
    ) -> HandshakeResult:
        """Decide on an upgrade request.

        Args:
            path: The request target (path and query).
            headers: Lower-cased header names (``headers_from``).
            peer: The TCP peer's address.
            now: The current Unix time.

        Raises:
            AuthRejected: 403 for an address not allowed, 401 for missing or bad credentials,
                400 for a ``Host`` no signed URL can have (with ``X-Twilio-Signature``).
        """
        client = client_address(peer, headers.get(FORWARDED_FOR_HEADER), self.trusted_proxies)
        client_text = str(client) if client is not None else None
        if self.allow and (client is None or not within(client, self.allow)):
            raise AuthRejected(HTTPStatus.FORBIDDEN, "address_not_allowed")
        if not self.credentials_required:
            return HandshakeResult(None, client=client_text)

        passed: list[str] = []
        call_id: str | None = None
        plivo_reading: str | None = None
        token = self.query_token(path) if self.secrets else None
        if token is not None:
            try:
                verified = verify_stream_token(
                    token, secrets=self.secrets, now=now, call_id=headers.get(CALL_ID_HEADER)
                )
            except TokenInvalid as exc:
                raise AuthRejected(HTTPStatus.UNAUTHORIZED, f"token_{exc.reason}") from None
            passed.append("url_token")
            call_id = verified.call_id

        authorization = headers.get("authorization")
        if authorization is not None:
            scheme, credentials = split_authorization(authorization)
            if scheme == "bearer" and self.vonage_signature_secret and looks_like_jwt(credentials):
                try:
                    verify_vonage_jwt(credentials, self.vonage_signature_secret, now=now)
                except SignatureInvalid as exc:
                    if not (self.bearer_tokens and any_equal(credentials, self.bearer_tokens)):
                        raise AuthRejected(HTTPStatus.UNAUTHORIZED, exc.reason) from None
                    passed.append("bearer")
                else:
                    passed.append("vonage_jwt")
            elif scheme == "bearer" and self.bearer_tokens:
                if not any_equal(credentials, self.bearer_tokens):
                    raise AuthRejected(HTTPStatus.UNAUTHORIZED, "bad_bearer_token")
                passed.append("bearer")
            elif scheme == "basic" and self.basic_users:
                if not any_equal(basic_user_password(credentials) or "", self.basic_users):
                    raise AuthRejected(HTTPStatus.UNAUTHORIZED, "bad_basic_credentials")
                passed.append("basic")

        signature = headers.get(TWILIO_SIGNATURE_HEADER)
        if signature is not None and self.twilio_auth_token:
            try:
                good = verify_twilio_signature(
                    self.twilio_auth_token, self._public_url(path, headers), signature.strip()
                )
            except ValueError:  # Host "a:b", "[::1", a port over 65535: no URL was signed
                raise AuthRejected(HTTPStatus.BAD_REQUEST, "bad_host") from None
            if not good:
                raise AuthRejected(HTTPStatus.UNAUTHORIZED, "bad_twilio_signature")
            passed.append("twilio_signature")

        plivo = headers.get(PLIVO_SIGNATURE_HEADER)
        if plivo is not None and self.plivo_auth_token:
            try:
                reading = verify_plivo(
                    self.plivo_auth_token, self._public_url(path, headers), headers.get(PLIVO_NONCE_HEADER, ""), plivo
                )
            except SignatureInvalid as exc:
                raise AuthRejected(HTTPStatus.UNAUTHORIZED, exc.reason) from None
            passed.append("plivo_signature")
            plivo_reading = f"signed url: {reading}"

        if self.audiohook_keys and ("signature-input" in headers or "x-api-key" in headers):
            try:
                verify_audiohook(headers, request_target=path, keys=self.audiohook_keys, now=now)
            except SignatureInvalid as exc:
                raise AuthRejected(HTTPStatus.UNAUTHORIZED, exc.reason) from None
            passed.append("audiohook_signature")

        if passed:
            return HandshakeResult(passed[0], call_id=call_id, client=client_text, reading=plivo_reading)
        if self.secrets and self.start_token:
            return HandshakeResult(None, pending_start=True, client=client_text)
        raise AuthRejected(HTTPStatus.UNAUTHORIZED, "missing_credentials")

    def check_start(
        self, handshake: HandshakeResult, *, call_id: str, custom_parameters: Mapping[str, str], now: float
    ) -> str | None:
        """Decide on the start message; return how the stream was authenticated.

        Raises:
            StreamRefused: A URL token for another call, or a missing or bad start token.
        """
        if handshake.call_id is not None and not hmac.compare_digest(handshake.call_id.encode(), call_id.encode()):
            raise StreamRefused("stream token is for another call")
        if not handshake.pending_start:
            return handshake.method
        token = custom_parameters.get(self.token_param)
        if token is None:
            raise StreamRefused("no stream token in the start message")
        try:
            verify_stream_token(token, secrets=self.secrets, now=now, call_id=call_id)
        except TokenInvalid as exc:
            raise StreamRefused(f"start token {exc.reason.replace('_', ' ')}") from None
        return "start_token"

    def scrub(self, custom_parameters: Mapping[str, str]) -> dict[str, str]:
        """The custom parameters without our token (sinks and logs never see it)."""
        return {k: v for k, v in custom_parameters.items() if k != self.token_param}

    def query_token(self, path: str) -> str | None:
        """The stream token in ``path``'s query, if any."""
        _, sep, query = path.partition("?")
        if not sep:
            return None
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key == self.token_param:
                return value
        return None

    def _public_url(self, path: str, headers: Mapping[str, str]) -> str:
        base = self.public_base_url.rstrip("/") or "wss://" + headers.get("host", "")
        return base + path


# -- credentials (the stream port and the webhook port read them alike) -------------


def split_authorization(header: str) -> tuple[str, str]:
    """An ``Authorization`` header as (scheme, lower-cased; credentials)."""
    scheme, _, credentials = header.strip().partition(" ")
    return scheme.lower(), credentials.strip()


def basic_user_password(credentials: str) -> str | None:
    """HTTP basic credentials decoded to ``user:password``; None when they are not base64 UTF-8 with a colon."""
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return decoded if ":" in decoded else None


def any_equal(value: str, candidates: Iterable[str]) -> bool:
    """True when ``value`` equals one of ``candidates``; constant time, every candidate compared."""
    good = False
    encoded = value.encode("utf-8", "surrogateescape")
    for candidate in candidates:
        good |= hmac.compare_digest(encoded, candidate.encode("utf-8", "surrogateescape"))
    return good
