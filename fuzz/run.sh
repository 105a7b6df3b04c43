#!/usr/bin/env bash
# Builds the cargo-fuzz targets (nightly, libFuzzer + AddressSanitizer) and runs each for a
# bounded time from its committed seed corpus (fuzz/corpus/<target>/, read-only: what a run
# finds goes to a scratch directory). Fails on the first crash, leak or timeout; libFuzzer
# writes the input to fuzz/artifacts/<target>/ (turn it into a regression test in the crate
# concerned). The build is cached in fuzz/target.
#
#   fuzz/run.sh [seconds per target, default 60] [target ...]
#
# Needs: rustup's nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
all=(review policy sync_config keystone exec_credential kubeconfig)
targets=("${@:-${all[@]}}")
command -v cargo-fuzz >/dev/null || { echo "fuzz/run.sh: cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2; exit 1; }
t0=$(date +%s)
cargo +nightly fuzz build --fuzz-dir fuzz
echo "fuzz build: $(( $(date +%s) - t0 )) s"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "fuzz/artifacts/$t"
  echo "== fuzz $t (${secs} s)"
  # -rss_limit_mb: bounded memory is a property too; -timeout: no input may take 10 s.
  if ! cargo +nightly fuzz run --fuzz-dir fuzz "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
      -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
      -print_final_stats=1 2>"$scratch/$t.log"; then
    tail -60 "$scratch/$t.log" >&2
    echo "fuzz/run.sh: target $t failed (input in fuzz/artifacts/$t/)" >&2
    exit 1
  fi
  grep -E "^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|^#[0-9]+.*DONE" "$scratch/$t.log" | tr '\n' ' '
  echo
done
echo "fuzz: ${#targets[@]} targets, $(( $(date +%s) - t0 )) s"
