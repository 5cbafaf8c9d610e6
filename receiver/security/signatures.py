"""
The carriers' own signatures on the WebSocket upgrade. Pure.

No I/O, no clock of its own (``now`` is passed in), no logging; every
comparison is constant time and no error message carries a secret.

- **Plivo** (``X-Plivo-Signature-V3``, ``X-Plivo-Signature-V3-Nonce``):
  ``base64(HMAC-SHA256(auth token, url + "." + nonce))`` where ``url`` is the
  scheme, host and path plus the query sorted by name, as plivo-python's
  ``validate_v3_signature`` builds it for a GET; the header may list several
  signatures (one per active auth token). Which URL a stream upgrade is
  signed over is not documented: Plivo's own stream SDK checks
  ``http://<host><path>/websocket``; the stream URL as configured (``wss://``)
  is the other reading. Both are tried, and the one that matched is named.
- **Vonage** (``Authorization: Bearer <JWT>``, an endpoint's
  ``authorization: {"type": "vonage"}``): an HS256 JWT signed with the
  account's signature secret, as Vonage signs its webhooks; ``exp`` is honoured
  when present and ``iat`` may be at most ``max_age`` seconds old.
- **Genesys AudioHook** (``X-API-KEY`` and HTTP message signatures,
  ``Signature-Input`` / ``Signature``, RFC 9421 with ``hmac-sha256``): the
  signature must cover ``@request-target``, ``@authority``,
  ``audiohook-organization-id``, ``audiohook-session-id``,
  ``audiohook-correlation-id`` and ``x-api-key``; its ``keyid`` is the API key;
  the key is the client secret (base64).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs, urlsplit

from receiver.errors import ReceiverError

PLIVO_SIGNATURE_HEADER: Final = "x-plivo-signature-v3"
PLIVO_NONCE_HEADER: Final = "x-plivo-signature-v3-nonce"
AUDIOHOOK_HEADERS: Final = (
    "x-api-key",
    "signature",
    "signature-input",
    "audiohook-organization-id",
    "audiohook-session-id",
    "audiohook-correlation-id",
)
AUDIOHOOK_COVERED: Final = (
    "@request-target",
    "@authority",
    "audiohook-organization-id",
    "audiohook-session-id",
    "audiohook-correlation-id",
    "x-api-key",
)
MAX_CLOCK_SKEW: Final = 3  # seconds a signer's clock may run ahead (Genesys' reference implementation)


class SignatureInvalid(ReceiverError):
    """A carrier's signature on the upgrade does not verify; ``reason`` is a short code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- Plivo -------------------------------------------------------------------------------


def plivo_signed_url(url: str) -> str:
    """The URL as Plivo signs it for a GET: scheme, host and path, then ``?`` and the query
    sorted by name (repeated values sorted), unescaped."""
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    query = parse_qs(parts.query, keep_blank_values=True)
    if not query:
        return base
    pairs = "&".join(f"{key}={value}" for key in sorted(query) for value in sorted(query[key]))
    return f"{base}?{pairs}"


def plivo_signature(auth_token: str, url: str, nonce: str) -> str:
    payload = f"{plivo_signed_url(url)}.{nonce}".encode()
    return base64.b64encode(hmac.new(auth_token.encode(), payload, hashlib.sha256).digest()).decode()


def plivo_url_readings(public_url: str) -> list[tuple[str, str]]:
    """The URLs a stream upgrade may be signed over, each with the name of its reading."""
    parts = urlsplit(public_url)
    path = parts.path + "/websocket" if not parts.path.endswith("/websocket") else parts.path
    query = "?" + parts.query if parts.query else ""
    return [
        ("stream_sdk", f"http://{parts.netloc}{path}{query}"),  # what Plivo's stream SDK checks
        ("stream_url", public_url),
    ]


def verify_plivo(auth_token: str, public_url: str, nonce: str, header: str) -> str:
    """Check ``X-Plivo-Signature-V3``; return the URL reading that matched.

    Raises:
        SignatureInvalid: No nonce, or no signature in the header matches.
    """
    if not nonce:
        raise SignatureInvalid("plivo_nonce_missing")
    offered = [s.strip().encode() for s in header.split(",") if s.strip()]
    matched = None
    for name, url in plivo_url_readings(public_url):
        expected = plivo_signature(auth_token, url, nonce).encode()
        for signature in offered:
            if hmac.compare_digest(expected, signature) and matched is None:
                matched = name
    if matched is None:
        raise SignatureInvalid("bad_plivo_signature")
    return matched


# -- Vonage ------------------------------------------------------------------------------


def _unb64url(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and all(part for part in token.split("."))


def verify_vonage_jwt(token: str, secret: str, *, now: float, max_age: float = 300.0) -> None:
    """Check an HS256 JWT signed with the Vonage signature secret.

    Raises:
        SignatureInvalid: ``malformed_jwt``, ``bad_jwt_signature``, ``jwt_expired`` or ``jwt_not_yet_valid``.
    """
    try:
        head_b64, body_b64, signature_b64 = token.split(".")
        header = json.loads(_unb64url(head_b64))
        claims = json.loads(_unb64url(body_b64))
        signature = _unb64url(signature_b64)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise SignatureInvalid("malformed_jwt") from None
    if not isinstance(header, dict) or not isinstance(claims, dict) or header.get("alg") != "HS256":
        raise SignatureInvalid("malformed_jwt")
    expected = hmac.new(secret.encode(), f"{head_b64}.{body_b64}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise SignatureInvalid("bad_jwt_signature")
    exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
    for value in (exp, iat, nbf):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise SignatureInvalid("malformed_jwt")
    if exp is not None and now > exp:
        raise SignatureInvalid("jwt_expired")
    if iat is not None and (now - iat > max_age):
        raise SignatureInvalid("jwt_expired")
    if (iat is not None and iat - now > MAX_CLOCK_SKEW) or (nbf is not None and nbf - now > MAX_CLOCK_SKEW):
        raise SignatureInvalid("jwt_not_yet_valid")


# -- HTTP message signatures (AudioHook) --------------------------------------------------

_TOKEN = re.compile(r"[A-Za-z*][A-Za-z0-9_\-.:%*/]*")
_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")


@dataclass(frozen=True, slots=True)
class SignatureInput:
    """One ``Signature-Input`` member: the covered components and the parameters, in order."""

    label: str
    components: tuple[str, ...]
    params: tuple[tuple[str, str | int], ...]

    def serialize(self) -> str:
        """The member's value, serialized as RFC 8941 does (the ``@signature-params`` line)."""
        items = " ".join(_sf_string(c) for c in self.components)
        params = "".join(f";{k}={_sf_string(v) if isinstance(v, str) else v}" for k, v in self.params)
        return f"({items}){params}"

    def param(self, key: str) -> str | int | None:
        return next((v for k, v in self.params if k == key), None)


def _sf_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Reader:
    """A strict reader of the RFC 8941 pieces the two signature headers use."""

    def __init__(self, text: str) -> None:
        self.text = text.strip()
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise ValueError(f"expected {char!r}")
        self.pos += 1

    def spaces(self) -> None:
        while self.peek() in (" ", "\t") and self.peek():
            self.pos += 1

    def key(self) -> str:
        match = _KEY.match(self.text, self.pos)
        if not match:
            raise ValueError("expected a key")
        self.pos = match.end()
        return match.group()

    def string(self) -> str:
        self.expect('"')
        out: list[str] = []
        while True:
            char = self.peek()
            if not char:
                raise ValueError("unterminated string")
            self.pos += 1
            if char == '"':
                return "".join(out)
            if char == "\\":
                char = self.peek()
                if char not in ('"', "\\"):
                    raise ValueError("bad escape")
                self.pos += 1
            elif not (" " <= char <= "~"):
                raise ValueError("bad character in string")
            out.append(char)

    def bare(self) -> str | int:
        char = self.peek()
        if char == '"':
            return self.string()
        match = re.compile(r"-?[0-9]{1,15}").match(self.text, self.pos)
        if match:
            self.pos = match.end()
            return int(match.group())
        match = _TOKEN.match(self.text, self.pos)
        if not match:
            raise ValueError("expected a value")
        self.pos = match.end()
        return match.group()

    def params(self) -> tuple[tuple[str, str | int], ...]:
        out = []
        while self.peek() == ";":
            self.pos += 1
            self.spaces()
            key = self.key()
            value: str | int = 1
            if self.peek() == "=":
                self.pos += 1
                value = self.bare()
            out.append((key, value))
        return tuple(out)


def parse_signature_input(text: str) -> list[SignatureInput]:
    """``Signature-Input``: a dictionary of inner lists of strings, with parameters."""
    reader = _Reader(text)
    out: list[SignatureInput] = []
    while True:
        label = reader.key()
        reader.expect("=")
        reader.expect("(")
        components = []
        while True:
            reader.spaces()
            if reader.peek() == ")":
                reader.pos += 1
                break
            value = reader.string()
            if reader.peek() == ";":
                raise ValueError("component parameters are not supported")
            components.append(value)
        out.append(SignatureInput(label, tuple(components), reader.params()))
        reader.spaces()
        if not reader.peek():
            return out
        reader.expect(",")
        reader.spaces()


def parse_signature(text: str) -> dict[str, bytes]:
    """``Signature``: a dictionary of byte sequences (``label=:base64:``)."""
    reader = _Reader(text)
    out: dict[str, bytes] = {}
    while True:
        label = reader.key()
        reader.expect("=")
        reader.expect(":")
        end = reader.text.index(":", reader.pos)
        out[label] = base64.b64decode(reader.text[reader.pos : end], validate=True)
        reader.pos = end + 1
        reader.params()
        reader.spaces()
        if not reader.peek():
            return out
        reader.expect(",")
        reader.spaces()


def canonical(value: str) -> str:
    """A header value as RFC 9421 covers it: trimmed, obsolete line folding undone."""
    return re.sub(r"[ \t]*\r\n[ \t]+", " ", value.strip())


def signature_base(signature_input: SignatureInput, values: Mapping[str, str]) -> str:
    """The text an RFC 9421 signature signs, from each covered component's value."""
    lines = [f"{_sf_string(name)}: {values[name]}" for name in signature_input.components]
    lines.append(f'"@signature-params": {signature_input.serialize()}')
    return "\n".join(lines)


def verify_audiohook(
    headers: Mapping[str, str],
    *,
    request_target: str,
    keys: Mapping[str, bytes],
    now: float,
    max_age: float = 10.0,
) -> str:
    """Check an AudioHook upgrade's signature; return the API key it was made with.

    Args:
        headers: The request's headers, lower-cased names.
        request_target: The request's path and query, as sent.
        keys: Client secrets (decoded) by API key.
        now: The current Unix time.
        max_age: How old (by its ``created``) a signature may be.

    Raises:
        SignatureInvalid: The reason, as a short code.
    """
    api_key = headers.get("x-api-key")
    if not api_key:
        raise SignatureInvalid("audiohook_api_key_missing")
    try:
        inputs = parse_signature_input(headers.get("signature-input", ""))
        signatures = parse_signature(headers.get("signature", ""))
    except (ValueError, binascii.Error):
        raise SignatureInvalid("audiohook_signature_malformed") from None
    chosen = inputs[0]
    signature = signatures.get(chosen.label)
    if signature is None:
        raise SignatureInvalid("audiohook_signature_malformed")
    missing = [c for c in AUDIOHOOK_COVERED if c not in chosen.components]
    if missing or len(set(chosen.components)) != len(chosen.components):
        raise SignatureInvalid("audiohook_signature_incomplete")
    alg, keyid, nonce = chosen.param("alg"), chosen.param("keyid"), chosen.param("nonce")
    created, expires = chosen.param("created"), chosen.param("expires")
    if alg not in (None, "hmac-sha256") or keyid != api_key or not isinstance(nonce, str) or len(nonce) < 22:
        raise SignatureInvalid("audiohook_signature_params")
    if not isinstance(created, int) or created > now + MAX_CLOCK_SKEW or now - created > max_age:
        raise SignatureInvalid("audiohook_signature_expired")
    if expires is not None and (not isinstance(expires, int) or expires < now):
        raise SignatureInvalid("audiohook_signature_expired")
    values: dict[str, str] = {"@request-target": request_target, "@authority": headers.get("host", "").lower()}
    for name in chosen.components:
        if name in values:
            continue
        if name.startswith("@") or name not in headers:
            raise SignatureInvalid("audiohook_signature_incomplete")
        values[name] = canonical(headers[name])
    key = keys.get(api_key)
    base = signature_base(chosen, values).encode()
    # An unknown key is checked against a key no one has, so timing does not tell the two apart.
    expected = hmac.new(key if key is not None else b"\0" * 32, base, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature) or key is None:
        raise SignatureInvalid("bad_audiohook_signature")
    return api_key


def parse_api_keys(entries: Sequence[str]) -> dict[str, bytes]:
    """``API_KEY:CLIENT_SECRET`` entries (the secret base64, as Genesys shows it) as a dict.

    Raises:
        ValueError: An entry is not ``key:base64``.
    """
    keys: dict[str, bytes] = {}
    for entry in entries:
        key, sep, secret = entry.partition(":")
        if not sep or not key:
            raise ValueError("audiohook_api_keys entries must be API_KEY:CLIENT_SECRET")
        try:
            keys[key] = base64.b64decode(secret, validate=True)
        except binascii.Error:
            raise ValueError("audiohook_api_keys: the client secret must be base64") from None
    return keys
