#!/usr/bin/env bash
# Fuzzes the parsers of untrusted input (NAR, .drv ATerm, narinfo, Guix S-expressions, signed
# notes, checkpoints,
# DSSE envelopes) with libFuzzer via
# cargo-fuzz, SECONDS (default 20) per target. The stable toolchain is allowed the nightly
# flags cargo-fuzz passes through RUSTC_BOOTSTRAP, since no nightly can be fetched here.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked -q
export RUSTC_BOOTSTRAP=1
for target in nar aterm narinfo sexp note checkpoint envelope; do
  corpus="fuzz/corpus/$target"
  mkdir -p "$corpus"
  cp -n fuzz/seeds/"$target"/* "$corpus"/ 2>/dev/null || true
  echo "fuzzing $target for ${seconds}s" >&2
  cargo fuzz run --sanitizer none "$target" "$corpus" -- -max_total_time="$seconds" -max_len=65536 2>&1 | tail -n 3
done
