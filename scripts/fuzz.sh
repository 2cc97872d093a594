#!/usr/bin/env bash
# Run the stream parser's fuzz target (fuzz/fuzz_stream.py, atheris) for a
# bounded time on each engine, the compiled one and the pure twin.
#
#   bash scripts/fuzz.sh [SECONDS]      default 60 seconds per engine
#
# Seeds are written into a fresh temporary corpus per engine by the target
# itself (python fuzz/fuzz_stream.py --write-seeds DIR); nothing is committed.
# Exits non-zero if an input breaks the invariant on either engine; the
# crashing input is kept in the directory printed at the end (reproduce with
# python fuzz/fuzz_stream.py --engine ENGINE FILE).  Extra libFuzzer flags can
# be given in FUZZ_FLAGS (for example FUZZ_FLAGS="-jobs=2").
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
case "$seconds" in
    ''|*[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS]" >&2; exit 2 ;;
esac

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

status=0
for engine in compiled pure; do
    corpus="$work/corpus-$engine"
    artifacts="$work/artifacts-$engine"
    mkdir -p "$corpus" "$artifacts"
    python3 fuzz/fuzz_stream.py --write-seeds "$corpus" >/dev/null
    echo "== fuzz_stream: $engine engine, ${seconds}s"
    set +e
    python3 fuzz/fuzz_stream.py --engine "$engine" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
        -dict="$work/xml.dict" -artifact_prefix="$artifacts/" -print_final_stats=1 \
        ${FUZZ_FLAGS:-} "$corpus" >"$work/log-$engine" 2>&1
    rc=$?
    set -e
    grep -E "^(fuzz_stream:|Done [0-9]+ runs|stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added)" \
        "$work/log-$engine" || true
    echo "corpus: $(ls "$corpus" | wc -l) inputs"
    if [ "$rc" -ne 0 ]; then
        status=1
        keep=1
        tail -n 40 "$work/log-$engine" >&2
        echo "scripts/fuzz.sh: $engine engine: the invariant broke (exit $rc);" \
            "crashing input and log kept in $work" >&2
    fi
done
exit "$status"
