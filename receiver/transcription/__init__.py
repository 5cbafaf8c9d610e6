"""
Transcription plugins: sinks found by entry point, fed each track's audio, publishing transcripts.

- ``plugins``: the entry-point group ``receiver.sinks``, the ``[[sinks]]``
  setting, and ``PluginSink`` (track selection, conversion, transcripts);
- ``audio``: streaming resampling and sample-format conversion (soxr);
- ``transcript``: ``Transcript`` events and their outputs (JSON-lines file,
  log ``receiver.transcripts``, HTTP callback), and the dialogue view;
- ``vad``: utterance segmentation (the ``vad`` plugin);
- ``sphinx``: the built-in offline engine (the ``pocketsphinx`` plugin);
- ``pipe``: external commands (the ``pipe`` plugin).
"""

from __future__ import annotations

from receiver.transcription.transcript import Transcript, Transcripts

__all__ = ["Transcript", "Transcripts"]
