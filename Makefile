# The two README commands. Both create .venv and install what they need on first use.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test install clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# CPU torch first, pinned: an unpinned torch pulls gigabytes of CUDA packages.
	$(VENV)/bin/pip install --quiet torch==2.13.0
	$(VENV)/bin/pip install --quiet -e ".[all,test]"
	touch $(STAMP)

install: $(STAMP)

# Main job: train per-domain agents (Transformer-DQN and the MLP ablation, two seeds, small
# budgets), evaluate them beside every baseline and write the comparative report docs/reports/quick/.
demo: $(STAMP)
	$(VENV)/bin/attnq report --profile quick

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python -m pytest

clean-venv:
	rm -rf $(VENV)
