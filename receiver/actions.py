"""Public name for the answer_url actions library (documented as ``receiver.actions``); the code is ``receiver.calls.actions``."""

from receiver.calls.actions import *  # noqa: F403
from receiver.calls.actions import __all__ as __all__
