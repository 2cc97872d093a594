#!/usr/bin/env bash
# Run the stream parser's fuzz target (fuzz/fuzz_stream.py, atheris) for a
# bounded time on each engine: the pure twin first (its Python code gives the
# coverage feedback), then the compiled one, which starts from the seeds and
# from every input the pure run found interesting.
#
#   bash scripts/fuzz.sh [SECONDS]      default 60 seconds per engine
#
# The code fuzzed is this checkout's (src/ goes first on PYTHONPATH, whatever
# else is installed).  When its compiled engine is not built yet (a fresh
# clone) it is built in place first (python3 setup.py build_ext --inplace) and
# the build's time is taken out of the fuzzing time, half from each engine
# (each keeps at least 5 seconds).  Each run is stopped by libFuzzer's clock
# and, as a backstop, killed 20 seconds after it; the whole script takes about
# 2 * SECONDS + 10 seconds.
#
# Seeds are written into a fresh temporary corpus by the target itself
# (python fuzz/fuzz_stream.py --write-seeds DIR); nothing is committed.
# Exits 0 when both runs are clean, 1 if an input breaks the invariant on
# either engine (or a run does not stop in time), 2 on a usage or setup
# error.  The crashing input and the log are kept in the directory printed
# at the end (reproduce with python fuzz/fuzz_stream.py --engine ENGINE FILE).
# Extra libFuzzer flags can be given in FUZZ_FLAGS (for example
# FUZZ_FLAGS="-jobs=2").
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"

seconds="${1:-60}"
case "$seconds" in
    ''|*[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS]" >&2; exit 2 ;;
esac
seconds=$((10#$seconds))
if [ "$seconds" -lt 1 ]; then
    echo "usage: scripts/fuzz.sh [SECONDS]  (SECONDS >= 1)" >&2
    exit 2
fi

if ! python3 -c "import atheris" 2>/dev/null; then
    echo "scripts/fuzz.sh: atheris is not installed (python3 -m pip install atheris)" >&2
    exit 2
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/xmpp-fuzz.XXXXXX")"
keep=0
cleanup() {
    if [ "$keep" -eq 0 ]; then rm -rf "$work"; fi
}
trap cleanup EXIT

fuzz_seconds="$seconds"
if ! python3 -c "import xmpp._tokens" 2>/dev/null; then
    echo "== building the compiled engine in $root/src"
    started=$SECONDS
    if ! python3 setup.py build_ext --inplace -q >"$work/build.log" 2>&1 \
            || ! python3 -c "import xmpp._tokens" 2>>"$work/build.log"; then
        cat "$work/build.log" >&2
        echo "scripts/fuzz.sh: the compiled engine could not be built" >&2
        exit 2
    fi
    spent=$((SECONDS - started))
    fuzz_seconds=$((seconds - (spent + 1) / 2))
    if [ "$fuzz_seconds" -lt 5 ]; then
        fuzz_seconds=$((seconds < 5 ? seconds : 5))
    fi
    echo "built in ${spent}s: fuzzing ${fuzz_seconds}s per engine to stay within the bound"
fi

# A dictionary of XML and XMPP tokens helps libFuzzer build markup.
cat > "$work/xml.dict" <<'DICT'
"<"
">"
"/>"
"</"
"<?xml version='1.0'?>"
"<?xml version='1.0' encoding='UTF-16'?>"
"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
"</stream:stream>"
"<message>"
"</message>"
"<iq type='get' id='1'>"
"</iq>"
"xmlns="
"xmlns:"
"xml:lang="
"xml:"
"xmlns:a='xmlns'"
"http://www.w3.org/XML/1998/namespace"
"http://www.w3.org/2000/xmlns/"
"='"
"\""
"&amp;"
"&lt;"
"&#x41;"
"&#0;"
"&lol;"
"<![CDATA["
"]]>"
"<!--"
"-->"
"<?"
"?>"
"<!DOCTYPE"
"<!ENTITY"
"\xef\xbb\xbf"
"\xff\xfe"
"\xc3\xa9"
"\xf0\x9f\x98\x80"
DICT

# A hard stop for each run, should libFuzzer's own clock not stop it.
limit=()
if command -v timeout >/dev/null 2>&1; then
    limit=(timeout -k 5 "$((fuzz_seconds + 20))")
fi

seeds="$work/seeds"
python3 fuzz/fuzz_stream.py --write-seeds "$seeds" >/dev/null

status=0
for engine in pure compiled; do
    corpus="$work/corpus-$engine"
    artifacts="$work/artifacts-$engine"
    mkdir -p "$corpus" "$artifacts"
    # New inputs go to the first directory; the others are read only.
    dirs=("$corpus" "$seeds")
    if [ "$engine" = compiled ]; then
        dirs+=("$work/corpus-pure")
    fi
    echo "== fuzz_stream: $engine engine, ${fuzz_seconds}s"
    set +e
    # shellcheck disable=SC2086  # FUZZ_FLAGS is a list of flags
    ${limit[@]+"${limit[@]}"} python3 fuzz/fuzz_stream.py --engine "$engine" \
        -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
        -dict="$work/xml.dict" -artifact_prefix="$artifacts/" -print_final_stats=1 \
        ${FUZZ_FLAGS:-} "${dirs[@]}" >"$work/log-$engine" 2>&1
    rc=$?
    set -e
    grep -E "^(fuzz_stream:|Done [0-9]+ runs|stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added)" \
        "$work/log-$engine" || true
    echo "corpus: $(find "$corpus" -type f | wc -l) new inputs"
    if [ "$rc" -ne 0 ]; then
        status=1
        keep=1
        tail -n 40 "$work/log-$engine" >&2
        if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
            echo "scripts/fuzz.sh: $engine engine: the run did not stop within $((fuzz_seconds + 20))s;" \
                "log kept in $work" >&2
        else
            echo "scripts/fuzz.sh: $engine engine: the invariant broke (exit $rc);" \
                "crashing input and log kept in $work" >&2
        fi
    fi
done
exit "$status"
