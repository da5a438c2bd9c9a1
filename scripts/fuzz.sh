#!/usr/bin/env bash
# Fuzzes the parsers of untrusted input (NAR, .drv ATerm, narinfo, Guix S-expressions, signed
# notes, checkpoints,
# DSSE envelopes, node messages) with libFuzzer via
# cargo-fuzz, SECONDS (default 20) per target. The stable toolchain is allowed the nightly
# flags cargo-fuzz passes through RUSTC_BOOTSTRAP, since no nightly can be fetched here.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked -q
export RUSTC_BOOTSTRAP=1
for target in nar aterm narinfo sexp note checkpoint envelope node_message; do
  corpus="fuzz/corpus/$target"
  mkdir -p "$corpus"
  cp -n fuzz/seeds/"$target"/* "$corpus"/ 2>/dev/null || true
  echo "fuzzing $target for ${seconds}s" >&2
  log=$(mktemp)
  if ! cargo fuzz run --sanitizer none "$target" "$corpus" -- -max_total_time="$seconds" -max_len=65536 >"$log" 2>&1; then
    # The panic and the input that caused it, not only the tail of the backtrace.
    grep -A 12 -m 1 "panicked at" "$log" >&2 || tail -n 40 "$log" >&2
    grep -E "Test unit written|^Base64:" "$log" >&2 || true
    rm -f "$log"
    exit 1
  fi
  tail -n 1 "$log"
  rm -f "$log"
done
