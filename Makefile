# Two commands on a fresh machine: `make demo` and `make test`.
# Both create .venv when missing and install once; a second run reinstalls nothing
# unless pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.prismrl-installed
# Ray stays on loopback for a single-node run (see README, "Local runs").
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER ?= 0
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export MLFLOW_ALLOW_FILE_STORE ?= false

.PHONY: install demo test clean

install: $(STAMP)

# A new .venv takes about 7.5 GiB (torch's CUDA build brings its nvidia libraries); a full disk
# otherwise fails half way through pip with a bare "No space left on device".
NEED_GIB := 8

$(STAMP): pyproject.toml
	@test -x $(PY) || { free=$$(df -Pk . | awk 'NR==2 {print int($$4 / 1048576)}'); \
	  if [ "$$free" -lt $(NEED_GIB) ]; then \
	    echo "make: a new $(VENV) needs about $(NEED_GIB) GiB free on the disk holding $(CURDIR); it has $$free GiB" >&2; exit 1; fi; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	# The pinned torch pair first: they lie on local disk; a bare `torch` would pull a new build.
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[dev]"
	# audiobox-aesthetics depends on torchaudio (which does not import here): its model class only.
	$(PY) -m pip install -q --no-deps audiobox-aesthetics==0.0.4
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/prismrl demo $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) runs .pytest_cache
