"""
The credentials a carrier puts on its WebSocket upgrade, signed as the carrier signs them.

Written from the carriers' own code, not from the receiver's verifiers (see
``wire.py``): Plivo's V3 signature as plivo-python builds it for a GET, over
the URL Plivo's stream SDK checks (``http://<host><path>/websocket``); a
Vonage JWT as its signed webhooks carry (HS256 with the signature secret);
Genesys AudioHook's headers and HTTP message signature as its reference
client builds them. Basic credentials (Exotel, jambonz, Asterisk) need nothing
here: they ride in the stream URL (``wss://user:password@host/...``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from receiver.simulator.wire import StreamIdentity, WireFormat


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the simulated carriers sign with (empty: they send no signature)."""

    plivo_auth_token: str = field(default="", repr=False)
    vonage_signature_secret: str = field(default="", repr=False)
    audiohook_api_key: str = ""
    audiohook_client_secret: str = field(default="", repr=False)  # base64, as Genesys shows it


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def plivo_headers(auth_token: str, stream_url: str) -> dict[str, str]:
    parts = urlsplit(stream_url)
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    signed = f"http://{host}{parts.path}/websocket"
    query = sorted(parse_qsl(parts.query, keep_blank_values=True))
    if query:
        signed += "?" + "&".join(f"{k}={v}" for k, v in query)
    nonce = str(secrets.randbelow(10**20))
    digest = hmac.new(auth_token.encode(), f"{signed}.{nonce}".encode(), hashlib.sha256).digest()
    return {"X-Plivo-Signature-V3": base64.b64encode(digest).decode(), "X-Plivo-Signature-V3-Nonce": nonce}


def vonage_jwt(secret: str, application_id: str) -> str:
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {"iat": int(time.time()), "jti": str(uuid.uuid4()), "iss": "Vonage", "application_id": application_id}
    signing = _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
    signature = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    return signing + "." + _b64url(signature)


def audiohook_headers(api_key: str, client_secret: str, stream_url: str, ident: StreamIdentity) -> dict[str, str]:
    parts = urlsplit(stream_url)
    authority = parts.netloc.rpartition("@")[2].lower()
    target = parts.path + ("?" + parts.query if parts.query else "")
    headers = {
        "Audiohook-Organization-Id": ident.account_id,
        "Audiohook-Session-Id": ident.stream_id,
        "Audiohook-Correlation-Id": str(uuid.uuid4()),
        "X-API-KEY": api_key,
    }
    created = int(time.time())
    params = (
        f';keyid="{api_key}";nonce="{_b64url(secrets.token_bytes(18))}";alg="hmac-sha256"'
        f";created={created};expires={created + 30}"
    )
    names = ("@request-target", "@authority", *(name.lower() for name in headers))
    values = [target, authority, *headers.values()]
    covered = "(" + " ".join(f'"{n}"' for n in names) + ")" + params
    base = "\n".join([*(f'"{n}": {v}' for n, v in zip(names, values, strict=True)), f'"@signature-params": {covered}'])
    key = base64.b64decode(client_secret)
    signature = base64.b64encode(hmac.new(key, base.encode(), hashlib.sha256).digest()).decode()
    return {**headers, "Signature-Input": f"sig1={covered}", "Signature": f"sig1=:{signature}:"}


def upgrade_headers(
    credentials: Credentials, wire: WireFormat, stream_url: str, ident: StreamIdentity
) -> dict[str, str]:
    """The headers ``wire`` signs its upgrade with, made now (signatures carry the time)."""
    if wire is WireFormat.PLIVO and credentials.plivo_auth_token:
        return plivo_headers(credentials.plivo_auth_token, stream_url)
    if wire is WireFormat.VONAGE and credentials.vonage_signature_secret:
        return {"Authorization": "Bearer " + vonage_jwt(credentials.vonage_signature_secret, ident.application_id)}
    if wire is WireFormat.AUDIOHOOK and credentials.audiohook_api_key:
        return audiohook_headers(credentials.audiohook_api_key, credentials.audiohook_client_secret, stream_url, ident)
    return {}
