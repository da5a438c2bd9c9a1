#!/usr/bin/env bash
# Runs every test guixie has, installing what they need on a fresh Debian machine:
# the reference peer Nix (nix-bin, run single-user as root with NIX_REMOTE=local), cargo-nextest.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v nix-store >/dev/null || need_apt+=(nix-bin)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# Interop tests must compare with Nix, never skip silently.
export GUIXIE_REQUIRE_NIX=1
export NIX_REMOTE=local

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

if command -v cargo-nextest >/dev/null; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

# Fuzz the parsers of untrusted input for a bounded time (seconds per target).
scripts/fuzz.sh "${GUIXIE_FUZZ_SECONDS:-20}"
