#!/usr/bin/env python3
"""Write the seed corpus (``fuzz/corpus``): a few valid streams of every platform, one file each."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from receiver.testing import MiniVoiceMessages, TwilioMessages  # noqa: E402


def streams() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for encoding, rate, size in (("audio/x-mulaw", 8000, 160), ("audio/x-alaw", 8000, 160), ("audio/l16", 16000, 640)):
        mv = MiniVoiceMessages()
        lines = [mv.connected(), mv.start(encoding=encoding, sample_rate=rate)]
        for chunk in range(1, 5):
            for track in ("inbound", "outbound"):
                lines.append(
                    mv.media(
                        track, chunk, 20 * (chunk - 1), bytes(range(size % 256)) * (size // max(1, size % 256) or 1)
                    )
                )
        lines += [mv.dtmf("7", 60), mv.stop()]
        out[f"minivoice-{encoding.split('/')[1]}"] = lines
    for signalwire in (False, True):
        tw = TwilioMessages(signalwire=signalwire)
        lines = [tw.connected(), tw.start(tracks=("inbound",), custom_parameters={"token": "v1.1.YQ.YQ"})]
        lines += [tw.media("inbound", c, 20 * (c - 1), b"\xff" * 160) for c in range(1, 5)]
        lines.append(tw.stop())
        out["signalwire" if signalwire else "twilio"] = lines
    return out


def main() -> None:
    corpus = Path(__file__).resolve().parent / "corpus"
    corpus.mkdir(exist_ok=True)
    for name, lines in streams().items():
        (corpus / name).write_text("\n".join(lines))


if __name__ == "__main__":
    main()
