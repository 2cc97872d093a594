#!/usr/bin/env bash
# Install the package with its test dependencies (building the compiled
# engine) and run the whole test suite.  The README's test command and CI's
# .ci/run both call this script, so they cannot drift apart.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e '.[test]'
exec python3 -m pytest tests -q "$@"
