"""An example receiver plugin: publishes every loud half-second of each track."""

import numpy as np


class LoudnessSink:
    name = "loudness"
    interval = 0.5  # seconds of audio per write
    sample_rate = 8000  # the receiver resamples to this
    sample_format = "float32"  # and converts to this (-1.0 .. 1.0)
    transcripts = None  # set by the receiver before open: where events go

    def __init__(self, threshold_db: float = -20.0):
        self.threshold_db = float(threshold_db)

    async def open(self, stream):
        self.tracks = stream.tracks

    async def write(self, block):
        for track in self.tracks:
            samples = block.channels[track]
            rms = float(np.sqrt(np.mean(np.square(samples)))) if len(samples) else 0.0
            level = 20 * np.log10(max(rms, 1e-9))
            if level > self.threshold_db:
                start = block.start / block.sample_rate
                end = start + len(samples) / block.sample_rate
                self.transcripts.publish(track, start, end, f"loud ({level:.0f} dBFS)", kind="loudness")

    async def close(self, outcome):
        pass
