# A derived image: the receiver with a sink plugin installed and switched on.
#   docker build -t receiver-loudness --build-arg BASE=receiver -f examples/plugin.Dockerfile examples
# BASE is the receiver image (built from the project's Dockerfile).
ARG BASE=receiver
FROM ${BASE}

# Any package that registers a `receiver.sinks` entry point is a plugin: pip install it.
COPY receiver-loudness /tmp/receiver-loudness
RUN pip install --no-cache-dir /tmp/receiver-loudness && rm -rf /tmp/receiver-loudness

# Switch it on for the caller's track (the same as a [[sinks]] table in config.toml).
ENV RECEIVER_SINKS='[{"plugin": "loudness", "tracks": ["inbound"], "options": {"threshold_db": -30}}]'
