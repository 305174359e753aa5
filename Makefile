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

# Main job: train Transformer-DQN and the MLP ablation quickly, evaluate them and the baselines,
# and write a comparative report with an attention picture to docs/reports/quick/.
demo: $(STAMP)
	$(VENV)/bin/attnq bench highway-fast --seeds 0 --torsos transformer mlp \
		--set trainer.max_env_steps=5000 eval.episodes=20 \
		--runs-dir runs/demo --report docs/reports/quick

test: $(STAMP)
	$(VENV)/bin/python -m pytest

clean-venv:
	rm -rf $(VENV)
