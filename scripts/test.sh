#!/usr/bin/env bash
# Install the package with its test dependencies (building the compiled
# engine unless XMPP_NO_EXTENSIONS=1) and run the whole test suite.
# The README's test command, CI's .ci/run and .github/workflows/ci.yml all
# call this script, so they cannot drift apart.  Extra arguments go to pytest
# (for example: bash scripts/test.sh -x -k parser).
#
# Exits non-zero when a test fails, when pytest collects nothing (its exit
# code 5) and also when pytest exits 0 having executed no test at all (every
# test skipped or deselected): a green run must have run something.
set -euo pipefail
cd "$(dirname "$0")/.."

export PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_ROOT_USER_ACTION="${PIP_ROOT_USER_ACTION:-ignore}"

# XMPP_SKIP_INSTALL=1: the caller (.ci/run) installed it already.
if [ -z "${XMPP_SKIP_INSTALL:-}" ]; then
    python3 -m pip install -q -e '.[test]'
fi

report="$(mktemp "${TMPDIR:-/tmp}/xmpp-junit.XXXXXX")"
trap 'rm -f "$report"' EXIT

# testpaths in pyproject.toml is "tests": with no path argument pytest runs
# that folder; with one (scripts/test.sh tests/test_x.py) it runs just that.
set +e
# --tb=native: tracebacks without re-parsing source files (pytest's default
# formatting calls ast.parse, which CPython 3.11.7 can fail with "AST
# constructor recursion depth mismatch", hiding the real failure).
python3 -m pytest -q --tb=native --junit-xml="$report" "$@"
rc=$?
set -e

if [ "$rc" -eq 0 ]; then
    case " $* " in
        *" --co "* | *" --collect-only "* | *" --help "* | *" -h "*) exit 0 ;;
    esac
    python3 - "$report" <<'EOF'
import sys
import xml.etree.ElementTree as ET

try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError) as exc:
    sys.exit(f"scripts/test.sh: no test report from pytest ({exc}): treating as failure")
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
ran = sum(int(s.get("tests", 0)) - int(s.get("skipped", 0)) for s in suites)
if ran <= 0:
    sys.exit("scripts/test.sh: pytest exited 0 but executed no test: treating as failure")
EOF
fi
exit "$rc"
