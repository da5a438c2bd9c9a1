#!/usr/bin/env bash
# Transparency-log benchmark with its naive baselines in the same run (see the example's doc).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release --locked -q -p guixie-log --example log_bench -- "$@"
