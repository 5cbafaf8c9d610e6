"""Public names for signing stream URLs (documented as ``receiver.auth``); the code is ``receiver.security.auth``."""

from receiver.security.auth import sign_stream_url, stream_token, verify_stream_token

__all__ = ["sign_stream_url", "stream_token", "verify_stream_token"]
