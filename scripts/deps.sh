#!/usr/bin/env bash
# Installs the Debian packages guixie needs, if missing: Guile 3.0 (headers and library, for
# the package language), pkg-config, a static busybox (the sandbox's /bin/sh, as in Nix's
# default sandbox paths), and the packages of the bootstrap toolchain package builds use
# (gcc, make, Guile, patch, xz; see docs/bootstrap.md), slirp4netns (the network of
# fixed-output builds, in a namespace of their own; see docs/security.md);
# with --test also Nix (nix-bin), the reference peer, Python 3 (the graph generators and
# a test's HTTP server), guile-gcrypt (libgcrypt, the reference for Guix's signatures),
# openssl (a test's TLS certificates), and the tools of the cmake, perl, python and
# pyproject build systems and of git-fetch (cmake, perl, python3-setuptools, python3-pip,
# python3-wheel, git), which their toolchain variant takes from the host, strace (traced
# builds, `guixie build --trace=strace`), and valgrind, gdb,
# linux-perf and libc6-dbg (`guixie run --trace=…`).
set -euo pipefail
want=(guile-3.0-dev:/usr/include/guile/3.0/libguile.h pkg-config:/usr/bin/pkg-config busybox-static:/bin/busybox
      gcc:/usr/bin/gcc make:/usr/bin/make guile-3.0:/usr/bin/guile-3.0 libc6-dev:/usr/include/stdio.h
      patch:/usr/bin/patch xz-utils:/usr/bin/xz slirp4netns:/usr/bin/slirp4netns)
[ "${1:-}" = "--test" ] && want+=(nix-bin:/usr/bin/nix-store python3:/usr/bin/python3
                                  guile-gcrypt:/usr/share/guile/site/3.0/gcrypt/pk-crypto.scm
                                  openssl:/usr/bin/openssl cmake:/usr/bin/cmake perl:/usr/bin/perl
                                  python3-setuptools:/usr/lib/python3/dist-packages/setuptools
                                  python3-pip:/usr/lib/python3/dist-packages/pip
                                  python3-wheel:/usr/lib/python3/dist-packages/wheel
                                  git:/usr/bin/git strace:/usr/bin/strace
                                  valgrind:/usr/bin/valgrind.bin gdb:/usr/bin/gdb
                                  libc6-dbg:/usr/lib/debug/.build-id linux-perf:/usr/bin/perf)
missing=()
for entry in "${want[@]}"; do
  [ -e "${entry#*:}" ] || missing+=("${entry%%:*}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing ${missing[*]}" >&2
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
