#!/bin/sh
# Runs dynamod's fuzz targets, each for a bounded time; exits non-zero if any of them crashed.
#
#   fuzz/run.sh [--seconds N] [--sanitizer address|none] [TARGET...]
#   fuzz/run.sh TARGET SECONDS
#
# Without TARGET every target runs, one after the other. --seconds 0 runs only the seeds and
# the saved corpus (a quick replay). Defaults: 60 seconds, AddressSanitizer.
#
# Needs only the stable toolchain: cargo-fuzz passes nightly `-Z` flags to rustc, which stable
# accepts with RUSTC_BOOTSTRAP=1 (set here). cargo-fuzz itself is installed from crates.io when
# missing. Inputs: fuzz/seeds/TARGET (committed) and fuzz/corpus/TARGET (grows as it runs, not
# committed). A crash leaves its input in fuzz/artifacts/TARGET/ and the log in
# fuzz/target/fuzz-logs/TARGET.log; the summary says how to reproduce it.
#
# Exit status: 0 when every target ran clean, 1 when at least one crashed (or timed out, or ran
# out of memory), 2 on a usage or setup error.

set -eu

FUZZ_DIR=$(cd "$(dirname "$0")" && pwd)
CARGO_FUZZ_VERSION=0.13.2
TARGETS="config_service config_supervisor config_load envfile proto_frames notify"
# Per-input limits. Generous on purpose: they catch hangs and runaway allocations, not slow
# machines.
INPUT_TIMEOUT_S=30
RSS_LIMIT_MB=2048

seconds=60
sanitizer=address
chosen=""

usage() {
    sed -n '2,17s/^# \{0,1\}//p' "$0" >&2
    echo "targets: $TARGETS" >&2
    exit 2
}

is_number() {
    case $1 in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac
}

is_target() {
    for t in $TARGETS; do
        [ "$t" = "$1" ] && return 0
    done
    return 1
}

# The old positional form: TARGET SECONDS.
if [ $# -eq 2 ] && is_target "$1" && is_number "$2"; then
    set -- --seconds "$2" "$1"
fi
while [ $# -gt 0 ]; do
    case $1 in
        -s | --seconds)
            [ $# -ge 2 ] && is_number "$2" || usage
            seconds=$2
            shift 2
            ;;
        --sanitizer)
            [ $# -ge 2 ] || usage
            case $2 in address | none) sanitizer=$2 ;; *) usage ;; esac
            shift 2
            ;;
        -h | --help) usage ;;
        -*) usage ;;
        *)
            is_target "$1" || { echo "run.sh: unknown target '$1'" >&2; usage; }
            chosen="$chosen $1"
            shift
            ;;
    esac
done
[ -n "$chosen" ] || chosen=$TARGETS

# cargo-fuzz's rustc flags are nightly-only; stable takes them with this.
export RUSTC_BOOTSTRAP=1

# Setup: cargo-fuzz, and a C++ compiler for libFuzzer itself (built by libfuzzer-sys).
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "run.sh: installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION" ||
        { echo "run.sh: cannot install cargo-fuzz" >&2; exit 2; }
fi
if ! command -v c++ >/dev/null 2>&1 && ! command -v clang++ >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "run.sh: installing g++ (libFuzzer is C++)" >&2
        apt-get install -y --no-install-recommends g++ >&2 ||
            { echo "run.sh: cannot install g++" >&2; exit 2; }
    else
        echo "run.sh: a C++ compiler is needed to build libFuzzer (install g++)" >&2
        exit 2
    fi
fi

# One build for every target; the runs below reuse it. Debug assertions on, so arithmetic
# overflow counts as a crash.
build_flags="--fuzz-dir $FUZZ_DIR --sanitizer $sanitizer --debug-assertions"
echo "run.sh: building fuzz targets (sanitizer: $sanitizer)" >&2
# shellcheck disable=SC2086 # word splitting of the flags is intended
cargo fuzz build $build_flags || { echo "run.sh: build failed" >&2; exit 2; }

logs=$FUZZ_DIR/target/fuzz-logs
mkdir -p "$logs"
failed=""
for t in $chosen; do
    mkdir -p "$FUZZ_DIR/corpus/$t" "$FUZZ_DIR/artifacts/$t"
    if [ "$seconds" -eq 0 ]; then
        limit="-runs=0"
    else
        limit="-max_total_time=$seconds"
    fi
    log=$logs/$t.log
    # shellcheck disable=SC2086
    if cargo fuzz run $build_flags "$t" "$FUZZ_DIR/corpus/$t" "$FUZZ_DIR/seeds/$t" -- \
        "$limit" -timeout="$INPUT_TIMEOUT_S" -rss_limit_mb="$RSS_LIMIT_MB" \
        -print_final_stats=1 >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
        echo "ok     $t: ${runs:-?} runs, ${cov:-cov: ?}"
    else
        failed="$failed $t"
        echo "CRASH  $t (log: $log)"
        # The panic message or the sanitizer's verdict, else the end of the log.
        why=$(grep -a -A 4 -m 1 -e 'panicked at' "$log" ||
            grep -a -m 3 -e '^==[0-9]*== *ERROR' -e '^SUMMARY' "$log" || true)
        if [ -n "$why" ]; then
            printf '%s\n' "$why" | sed 's/^/    /'
        else
            tail -n 20 "$log" | sed 's/^/    /'
        fi
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        if [ -n "$artifact" ]; then
            echo "    reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir $FUZZ_DIR $t $artifact"
            echo "    minimise:  RUSTC_BOOTSTRAP=1 cargo fuzz tmin --fuzz-dir $FUZZ_DIR $t $artifact"
        fi
    fi
done

if [ -n "$failed" ]; then
    echo "run.sh: crashed:$failed" >&2
    exit 1
fi
echo "run.sh: every target ran clean" >&2
