# receiver: the WebSocket media-stream receiver (docs/docker.md).
#   docker build -t receiver .
#   docker run -p 8080:8080 -p 8081:8081 -e RECEIVER_WEBHOOK_SECRET=<long random> \
#     -v recordings:/data/recordings -v calls:/data/calls receiver
# The webhook port listens on 0.0.0.0 here, so it refuses to start without credentials
# (RECEIVER_WEBHOOK_SECRET, or RECEIVER_WEBHOOK_USER + RECEIVER_WEBHOOK_PASSWORD; see docs/security.md).

# The build stage: a C compiler turns the media path's compiled part (setup.py: receiver/_native.pyx,
# and the modules with a .pxd beside them) into a wheel. Only the wheel goes on; the compiler stays here.
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY receiver ./receiver
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && python -c "import sys, zipfile; names = zipfile.ZipFile(sys.argv[1]).namelist(); \
import receiver; parts = ['receiver._native', *receiver.COMPILED_SOURCES]; \
missing = [p for p in parts if not any(n.startswith(p.replace('.', '/') + '.') and n.endswith('.so') for n in names)]; \
assert not missing, f'not compiled: {missing}'" /wheels/receiver-*.whl

FROM python:3.11-slim

# tini: PID 1 reaps every child (pipe plugin commands and whatever they start) and
# forwards docker stop's SIGTERM. Nothing else from apt: the test suite's tools
# (scripts/system-packages.txt: espeak-ng, sox, ...) stay out of the runtime image.
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 receiver
# The wheel the build stage compiled, with the extras a cluster needs (deploy/compose.yaml):
# PostgreSQL store, Redis bus and workers. More extras, comma-separated (docs/docker.md):
# docker build --build-arg EXTRAS=whisper -t receiver-whisper .
ARG EXTRAS=""
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir "$(ls /wheels/receiver-*.whl)[postgres,redis${EXTRAS:+,$EXTRAS}]" && rm -rf /wheels
COPY config.toml /etc/receiver/config.toml
COPY docker/entrypoint.sh /usr/local/bin/receiver-entrypoint

# Every port and path is a RECEIVER_* variable: the health check and the entrypoint follow them.
ENV RECEIVER_CONFIG=/etc/receiver/config.toml \
    RECEIVER_HOST=0.0.0.0 \
    RECEIVER_PORT=8080 \
    RECEIVER_WEBHOOK_HOST=0.0.0.0 \
    RECEIVER_WEBHOOK_PORT=8081 \
    RECEIVER_RECORDINGS_DIR=/data/recordings \
    RECEIVER_DATABASE=/data/calls/receiver.db \
    RECEIVER_LOG_FORMAT=json \
    RECEIVER_DRAIN_TIMEOUT=8
# Models a plugin downloads by name (the whisper plugin's model = "base": faster-whisper fetches it
# from its hub on first use) are cached here; mount a volume to keep them (-v models:/data/models).
ENV HF_HOME=/data/models
RUN mkdir -p /data/recordings /data/calls /data/models \
    && chown receiver:receiver /data/recordings /data/calls /data/models
VOLUME ["/data/recordings", "/data/calls"]
EXPOSE 8080 8081
# SIGTERM drains: live streams get RECEIVER_DRAIN_TIMEOUT seconds, then close 1012 and
# every file is finalised. `docker stop` sends SIGKILL after 10 s by default: raise both
# together (docker run --stop-timeout 40 -e RECEIVER_DRAIN_TIMEOUT=35).
STOPSIGNAL SIGTERM
# `receiver health` asks /healthz on the port the settings give (RECEIVER_PORT included).
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s CMD ["receiver", "health"]
# Started as root only to make bind-mounted data directories writable; the receiver
# itself runs as uid 10001 (or as --user UID:GID when given).
ENTRYPOINT ["tini", "--", "receiver-entrypoint"]
CMD ["receiver", "serve"]
