"""An example receiver plugin: publishes every loud tenth of a second of each track."""

import numpy as np


class LoudnessSink:
    name = "loudness"
    interval = 0.5  # how often the receiver hands over new audio (seconds)
    sample_rate = 8000  # the receiver resamples each track to this rate
    sample_format = "float32"  # and converts it to this format (-1.0 .. 1.0)
    transcripts = None  # set by the receiver before open(): where events go

    def __init__(self, threshold_db=-20.0):
        self.threshold_db = float(threshold_db)

    async def open(self, stream):
        self.tracks = stream.tracks  # only the tracks config.toml gave this plugin

    async def write(self, block):
        window = block.sample_rate // 10
        for track in self.tracks:
            samples = block.channels[track]
            for i in range(0, len(samples), window):
                part = samples[i : i + window]
                level = 10 * np.log10(max(float(np.mean(np.square(part))), 1e-12))
                if level > self.threshold_db:
                    start = (block.start + i) / block.sample_rate
                    end = start + len(part) / block.sample_rate
                    self.transcripts.publish(track, start, end, f"loud ({level:.0f} dBFS)", kind="loudness")

    async def close(self, outcome):
        pass
