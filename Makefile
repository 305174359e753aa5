# The two README commands. Both create .venv and install what they need on first use.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
# Where there is no NVIDIA GPU, torch comes from PyTorch's CPU wheel index when that host resolves:
# PyPI's torch is the CUDA build plus about 3 GB of NVIDIA packages. TORCH_INDEX= takes PyPI's (or a
# local wheel's) build; TORCH_INDEX=URL another index.
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
TORCH_INDEX ?= $(if $(shell command -v nvidia-smi 2>/dev/null),,$(shell timeout 5 $(PYTHON) -c \
	"import socket; socket.getaddrinfo('download.pytorch.org', 443); print('$(TORCH_CPU_INDEX)')" 2>/dev/null))

.PHONY: demo test install clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned (an unpinned torch pulls gigabytes of CUDA packages), then the rest.
	$(VENV)/bin/pip install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	$(VENV)/bin/pip install --quiet -e ".[all,test]"
	touch $(STAMP)

install: $(STAMP)

# Main job: the committed full-budget agents of every domain evaluated again on fresh episodes
# beside their baselines, plus highway-fast trained live for a few minutes; writes docs/reports/demo/.
demo: $(STAMP)
	$(VENV)/bin/attnq report --profile demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python -m pytest

clean-venv:
	rm -rf $(VENV)
