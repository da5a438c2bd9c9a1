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

# The governance core must build without std (a Substrate pallet could wrap it): its own code
# is #![no_std], and nothing it links may turn on a dependency's std feature.
for crate in guixie-govern guixie-dsse; do
  if cargo tree -p "$crate" -e normal,features --locked | grep -q 'feature "std"'; then
    echo "$crate: a dependency's std feature is enabled:" >&2
    cargo tree -p "$crate" -e normal,features --locked -i std 2>/dev/null >&2 || true
    exit 1
  fi
done
cargo build -p guixie-govern --locked

if command -v cargo-nextest >/dev/null; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

# guixie builds itself from this tree in the sandbox and proves the fixpoint (about 10 minutes
# here: two release builds; docs/self-build.md).
scripts/self-check.sh

# Fuzz the parsers of untrusted input for a bounded time (seconds per target).
scripts/fuzz.sh "${GUIXIE_FUZZ_SECONDS:-20}"
