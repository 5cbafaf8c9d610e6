# The receiver with the whisper plugin and a Whisper model baked in (docs/docker.md). The build
# context is the model's directory (model.bin, config.json, tokenizer.json, vocabulary.*):
#   docker build --build-arg EXTRAS=whisper -t receiver-whisper .
#   docker build -t receiver-whisper-base -f examples/whisper.Dockerfile PATH/TO/MODEL
ARG BASE=receiver-whisper
FROM ${BASE}
COPY . /opt/whisper/model
ENV RECEIVER_SINKS='[{"plugin": "whisper", "options": {"model": "/opt/whisper/model"}}]' \
    RECEIVER_SINK_CLOSE_TIMEOUT=60
