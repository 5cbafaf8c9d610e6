"""
TLS for serving ``wss://`` directly: the server's SSL context from the settings.

No I/O beyond reading the certificate and key files once at start-up.
"""

from __future__ import annotations

import ssl

from receiver.errors import ConfigError


def server_context(certfile: str, keyfile: str, password: str = "") -> ssl.SSLContext:
    """An SSL context serving ``certfile`` (a PEM chain) with ``keyfile``; TLS 1.2 or later.

    Raises:
        ConfigError: A file cannot be read, or the key does not fit the certificate.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile, keyfile, password=password or None)
    except (OSError, ssl.SSLError) as exc:
        # Never echo the password; the file names are fine.
        raise ConfigError(f"cannot load TLS certificate {certfile} / key {keyfile}: {type(exc).__name__}") from None
    return context
