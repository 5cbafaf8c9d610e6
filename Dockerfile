# receiver: the WebSocket media-stream receiver.
#   docker build -t receiver .
#   docker run -p 8080:8080 -p 8081:8081 -v recordings:/data/recordings -v calls:/data/calls receiver
FROM python:3.11-slim

# The same system packages CI installs (scripts/system-packages.txt).
COPY scripts/system-packages.txt /tmp/system-packages.txt
RUN packages=$(grep -v '^\s*#' /tmp/system-packages.txt | xargs || true); \
    if [ -n "$packages" ]; then apt-get update && apt-get install -y --no-install-recommends $packages && rm -rf /var/lib/apt/lists/*; fi

RUN useradd --create-home --uid 10001 receiver
WORKDIR /app
COPY pyproject.toml README.md ./
COPY receiver ./receiver
# The same pip install CI runs (make install), without the editable flag and test extras.
# With the extras a cluster needs (deploy/compose.yaml): PostgreSQL store, Redis bus and workers.
RUN pip install --no-cache-dir '.[postgres,redis]'
COPY config.toml /etc/receiver/config.toml

ENV RECEIVER_CONFIG=/etc/receiver/config.toml \
    RECEIVER_HOST=0.0.0.0 \
    RECEIVER_RECORDINGS_DIR=/data/recordings \
    RECEIVER_LOG_FORMAT=json \
    RECEIVER_DRAIN_TIMEOUT=8
# SIGTERM drains: live streams get RECEIVER_DRAIN_TIMEOUT seconds, then close 1012 and
# every file is finalised. `docker stop` sends SIGKILL after 10 s by default: raise both
# together (docker run --stop-timeout 40 -e RECEIVER_DRAIN_TIMEOUT=35).
STOPSIGNAL SIGTERM
# Webhooks and the call-record API on 8081; call records in their own volume.
ENV RECEIVER_WEBHOOK_HOST=0.0.0.0 \
    RECEIVER_DATABASE=/data/calls/receiver.db
RUN mkdir -p /data/recordings && chown receiver:receiver /data/recordings
RUN mkdir -p /data/calls && chown receiver:receiver /data/calls
VOLUME ["/data/recordings"]
VOLUME ["/data/calls"]
USER receiver
EXPOSE 8080
EXPOSE 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s \
  CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"
CMD ["receiver", "serve"]
