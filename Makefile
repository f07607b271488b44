# Shortcuts for scripts/run.sh, which holds the README's two commands (no make needed).
.PHONY: setup test demo clean

setup:
	@bash scripts/setup.sh

test:
	bash scripts/run.sh test

demo:
	bash scripts/run.sh demo

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache
