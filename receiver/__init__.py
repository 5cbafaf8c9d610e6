"""receiver: a WebSocket media-stream receiver for MiniVoice and Twilio-format streams."""

__version__ = "0.1.0"
