#!/usr/bin/env bash
# The README's two commands, with all set-up on a fresh Debian machine (run as root):
#   bash scripts/run.sh demo [isthmus demo flags]   -- the seed's story on a local mesh
#   bash scripts/run.sh test                         -- lint, types, layering, all tests
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
case "${1:-}" in
    demo)
        shift
        exec .venv/bin/isthmus demo "$@"
        ;;
    test)
        .venv/bin/ruff check src tests bench
        .venv/bin/ruff format --check src tests bench
        .venv/bin/mypy
        .venv/bin/lint-imports
        exec .venv/bin/pytest -q -p no:cacheprovider tests
        ;;
    *)
        echo "usage: bash scripts/run.sh demo|test" >&2
        exit 2
        ;;
esac
