#!/usr/bin/env bash
# The main job: build guixie, then build examples/hello.scm (a C program, gnu-build-system)
# in the sandbox, signed and logged as evidence, and run it; then walk the local store through
# its life: add a tree, inspect it, dump and restore its NAR, sign a narinfo, GC, verify;
# last, enter an environment with hello and run it by name, and install it into a profile,
# listing and rolling back its generations.
# Everything lives under a throw-away store root; no server, nothing outside it is touched.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
cargo build --release --locked -q
guixie() { target/release/guixie "$@"; }

work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
export GUIXIE_STORE="$work/store"

echo "== store root: $GUIXIE_STORE (logical store directory /gnu/store)"
echo "== guixie build examples/hello.scm (gnu-build-system, sandboxed; attested in the local log)"
hello_out=$(guixie build -j 2 examples/hello.scm)
echo "$hello_out"
echo "== running $hello_out/bin/hello:"
"$GUIXIE_STORE$hello_out/bin/hello"
hello_drv=$(guixie eval examples/hello.scm)
guixie drv check "$GUIXIE_STORE$hello_drv"
echo "== the package, and the bootstrap toolchain it was built with (the trust root):"
guixie show -f examples/hello.scm hello
echo "== a library and a program linking it, and a variant made with inherit:"
guixie build -j 2 examples/greeter.scm
echo "== the log's signed checkpoint, and the challenge of the build:"
guixie log checkpoint
guixie challenge "$hello_out"
path=$(guixie store add --name guixie-source crates)
echo "== added crates/ as $path"
guixie store info "$path"
echo "== NAR hash of crates/ (sha256, nix32): $(guixie hash path --to nix32 crates)"
echo "== NAR listing (first lines):"
guixie store info --json "$path" >/dev/null
guixie nar dump crates > "$work/crates.nar"
guixie nar ls "$work/crates.nar" | head -5
guixie nar restore "$work/restored" < "$work/crates.nar"
echo "== restored copy hashes the same: $(guixie hash path --to nix32 "$work/restored")"

guixie key generate demo-cache-1 --secret-key-file "$work/key.sec" --public-key-file "$work/key.pub"
cat > "$work/demo.narinfo" <<INFO
StorePath: $path
URL: nar/demo.nar
Compression: none
NarHash: $(guixie store info --json "$path" | sed -n 's/.*"narHash": "\(.*\)".*/\1/p')
NarSize: $(stat -c %s "$work/crates.nar")
References: 
INFO
guixie narinfo sign -i "$work/demo.narinfo" --key "$work/key.sec"
echo "== signed narinfo:"; cat "$work/demo.narinfo"
guixie narinfo verify "$work/demo.narinfo" --key "$(cat "$work/key.pub")"

guixie store add-root demo "$path" >/dev/null
guixie gc
guixie store verify

echo "== an environment with hello, run by name (the store appears at /gnu/store inside):"
guixie shell examples/hello.scm -- hello
echo "== hello installed into a profile (under the throw-away home), then greeter, then rolled back:"
export HOME="$work/home"; mkdir -p "$HOME"
guixie install examples/hello.scm
guixie install examples/greeter.scm
guixie package --list-generations
guixie package --roll-back
guixie package --list-installed
guixie shell -p "$HOME/.guixie-profile" -- hello
guixie size "$hello_out" | tail -1
echo "== done"
