"""
The call simulator: a local stand-in for MiniVoice (and the other carriers' streams).

``receiver simulate FLOW`` runs an answer_url flow on simulated calls: it
opens a WebSocket per ``start_stream`` and streams real audio in the chosen
wire format, stops streams as the flow says, applies seeded network faults,
sends the webhooks that follow, and can record what a correct receiver must
decode. It talks to the receiver only over the network: this package never
imports the server, the session or the parsers; it uses only
``receiver.codecs``, ``receiver.events`` and ``receiver.calls.actions``.

Modules: ``audio`` (sources), ``wire`` and ``carriers`` (the platforms' messages), ``plan``
(the call's timeline, faults and expected audio; pure), ``http`` (answer_url
and webhooks), ``runner`` (streams, calls and load), ``cli`` (the command).
"""

from __future__ import annotations

from receiver.simulator.audio import AudioError, AudioSpec
from receiver.simulator.http import WebhookSettings
from receiver.simulator.plan import CallPlan, Faults, MediaSpec, StreamPlan, plan_call
from receiver.simulator.runner import CallReport, Flow, RunReport, RunSettings, Stats, run, run_call
from receiver.simulator.wire import WireFormat

__all__ = [
    "AudioError",
    "AudioSpec",
    "CallPlan",
    "CallReport",
    "Faults",
    "Flow",
    "MediaSpec",
    "RunReport",
    "RunSettings",
    "Stats",
    "StreamPlan",
    "WebhookSettings",
    "WireFormat",
    "plan_call",
    "run",
    "run_call",
]
