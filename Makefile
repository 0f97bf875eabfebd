# r1cli: the two set-up commands of the README, and a few more.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo r1-mini-quick test test-fast bench lock upgrade-check clean

install:            ## create .venv from requirements.lock (torch: CPU or CUDA build, detected); R1_UNLOCKED=1: newest allowed
	VENV=$(VENV) scripts/install.sh

demo: install       ## the main job on the embedded default model (SmolLM2-135M)
	$(BIN)/r1 data arithmetic -n 8 | $(BIN)/r1 rollout -m smollm2-135m -n 4 --max-new-tokens 128

r1-mini-quick: install   ## the whole R1 recipe, quick mode (tiny model, 2–3 min): examples/r1-mini/
	PATH="$(abspath $(BIN)):$$PATH" examples/r1-mini/run.sh --quick

test: install       ## the whole test suite (CPU, no network; a few minutes)
	$(BIN)/python -m pytest

test-fast:          ## the suite without the `slow` end-to-end tests and without the fault suite (tests/faults)
	$(BIN)/python -m pytest -m "not slow" --ignore=tests/faults

bench:              ## benchmarks (print tables; minutes each)
	$(BIN)/python benchmarks/rollout.py

lock:               ## rewrite requirements.lock from .venv (after the whole suite passed in it)
	VENV=$(VENV) scripts/lock.sh

upgrade-check:      ## throwaway venv with the newest allowed versions: what moved, what broke, the new lock
	scripts/upgrade-check.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
