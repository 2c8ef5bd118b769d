#!/usr/bin/env bash
# Fuzzes every parser of untrusted input (cargo-fuzz, libFuzzer; the targets are in fuzz/):
#   binary      a whole file through gotarget::GoBinary::from_bytes (ELF, build info,
#               pclntab, moduledata, DWARF), then the queries mapwatch makes: probe plans,
#               call sites, the sync plan, site checks, inlined sites, symbolization
#   pclntab     .gopclntab: functions, names, files, lines, inline trees
#   buildinfo   .go.buildinfo: Go version and build settings
#   moduledata  finding runtime.firstmoduledata, and type names through it
#   type_names  type names from runtime type descriptors
#   code        machine code: prologue decoding, calls, jumps, returns, inlined sync sites
#   event       mapwatch's BPF ring buffer record decoder
#   report      the JSON-lines reader of `mapwatch report`
# Seeds come from real binaries of every Go version (crates/gotarget/examples/fuzz_seeds.rs)
# and fuzz/seeds/. A panic, a hang (-timeout), an allocation past -malloc_limit_mb or memory
# past -rss_limit_mb fails the run: the script exits 1 naming the input that did it (under
# fuzz/artifacts/TARGET/; replay it with `fuzz/target/x86_64-unknown-linux-gnu/release/TARGET
# FILE`). What was found is kept in fuzz/corpus/ for the next run.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET [TARGET...]]   (default: 20 s, every target)
# Installs the nightly toolchain and cargo-fuzz if missing (quietly; where they cannot be had,
# says so in one line and exits 0, as scripts/miri.sh does); Go toolchains must be there
# (scripts/setup.sh --tests).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-20}
shift || true
targets=("$@")
[ $# -gt 0 ] || targets=(binary pclntab buildinfo moduledata type_names code event report)

log() { printf 'fuzz: %s\n' "$*" >&2; }
# Runs a command with its output shown only if it fails.
quiet() {
    local out
    out=$(mktemp)
    if ! "$@" >"$out" 2>&1; then
        cat "$out" >&2
        rm -f "$out"
        return 1
    fi
    rm -f "$out"
}

# Longest input per target: the whole-binary seeds are Go binaries of 1-4 MB.
max_len() {
    case $1 in
        binary) echo 8388608 ;;
        pclntab | type_names) echo 1048576 ;;
        code) echo 8192 ;;
        *) echo 65536 ;;
    esac
}

skip() {
    echo "fuzz: SKIPPED: $*; the parsers were NOT fuzzed" >&2
    exit 0
}
scripts/nightly.sh || skip "cannot install the nightly toolchain on this machine"
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    quiet cargo +nightly install cargo-fuzz --locked || skip "cannot install cargo-fuzz"
fi

log "building the targets"
(cd fuzz && quiet cargo +nightly fuzz build)
log "seeds from real Go binaries"
cargo run --quiet -p gotarget --features fuzzing --example fuzz_seeds -- fuzz/corpus

bin=fuzz/target/x86_64-unknown-linux-gnu/release
failed=()
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    # What a run finds goes to the first directory. For whole binaries (1-4 MB each, ~20 runs
    # a second) that is a scratch one, dropped after: the seeds are the corpus worth keeping.
    rss=2048
    if [ "$t" = binary ]; then
        scratch=$(mktemp -d)
        dirs=("$scratch" "fuzz/corpus/$t")
        # libFuzzer holds its corpus in memory: 1-4 MB per input found.
        rss=6144
    else
        scratch=
        dirs=("fuzz/corpus/$t")
    fi
    [ -d "fuzz/seeds/$t" ] && dirs+=("fuzz/seeds/$t")
    out=$(mktemp)
    start=$SECONDS
    # One process (no -jobs/-workers): the machine's cores are shared.
    if "$bin/$t" -max_total_time="$seconds" -max_len="$(max_len "$t")" -timeout=10 \
        -rss_limit_mb="$rss" -malloc_limit_mb=1024 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$t/" "${dirs[@]}" >"$out" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out")
        log "$t: ok, ${runs:-?} runs in $((SECONDS - start)) s"
    else
        grep -E "panicked|ERROR|SUMMARY" "$out" | head -n 5 >&2 || true
        artifact=$(sed -n 's/.*Test unit written to //p' "$out" | tail -n 1)
        log "$t: FAILED; input: ${artifact:-see the log below}"
        [ -n "$artifact" ] || tail -n 30 "$out" >&2
        failed+=("$t")
    fi
    rm -rf "$out" ${scratch:+"$scratch"}
done
if [ ${#failed[@]} -gt 0 ]; then
    log "failed: ${failed[*]}"
    exit 1
fi
