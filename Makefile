# Two commands for a fresh machine: `make demo` and `make test`. Both create .venv when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUTPUT := out/quickstart
DEMO_PROMPT := What's a must-see in Paris?

.PHONY: install demo test schema benchmark clean

install: $(STAMP)

# torch goes in first and on its own: `torch==2.13.0` takes the CPU wheel, while letting a
# dependent package pull torch in would fetch gigabytes of CUDA libraries.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

demo: install
	$(BIN)/olivepress run --config workflows/quickstart.json --log_level 1
	$(BIN)/olivepress generate --model $(DEMO_OUTPUT)/model --prompt "$(DEMO_PROMPT)" --max_length 160 --repetition_penalty 1.1

# Lint and types first (seconds), then the suite (about 10 minutes on 2 cores; `pytest -m "not slow"` is the fast loop).
test: install
	$(BIN)/ruff check olivepress tests
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

schema: install
	$(BIN)/olivepress schema --builtin-only --output schemas/workflow.schema.json

benchmark: install
	$(BIN)/python benchmarks/quickstart.py
	$(BIN)/python benchmarks/finetune.py
	$(BIN)/python benchmarks/quantization.py
	$(BIN)/python benchmarks/auto_opt.py
	$(BIN)/python benchmarks/search.py
	$(BIN)/python benchmarks/workflows.py

clean:
	rm -rf out .olivepress-cache
