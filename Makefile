# The two front-door commands: `make demo` and `make test`. Each does all set-up itself.
.PHONY: setup test lint demo clean

VENV := .venv/bin

setup:
	@bash scripts/setup.sh

lint: setup
	$(VENV)/ruff check src tests bench
	$(VENV)/ruff format --check src tests bench
	$(VENV)/mypy
	$(VENV)/lint-imports

test: lint
	$(VENV)/pytest -q -p no:cacheprovider tests

demo: setup
	$(VENV)/isthmus demo

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache
