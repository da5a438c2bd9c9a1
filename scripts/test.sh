#!/usr/bin/env bash
# Runs every test guixie has, installing what they need on a fresh Debian machine:
# Guile 3.0, the reference peer Nix (nix-bin, run single-user as root with NIX_REMOTE=local).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh --test

# Fixed-output builds of unprivileged users get their network from slirp4netns, which opens
# /dev/net/tun as the user: give it the mode Debian's udev gives it (some containers make it
# 600), so the security tests exercise that path too.
if [ "$(id -u)" -eq 0 ] && [ -c /dev/net/tun ]; then
  chmod 666 /dev/net/tun
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
