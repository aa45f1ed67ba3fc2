#!/usr/bin/env bash
# Builds keyrot's Lambda binaries for provided.al2023 on arm64 (Graviton) with cargo-lambda, cross-compiling
# through zig. Installs what it needs once: scripts/tools.sh (cargo-lambda in .venv), ziglang from PyPI into
# the same venv (cargo-lambda finds zig as `python3 -m ziglang`), and rustup's aarch64-unknown-linux-gnu target.
#
#   scripts/infra-build.sh zip BIN...              target/lambda/BIN/bootstrap.zip for each BIN, sizes printed
#   scripts/infra-build.sh artifacts DIR BIN       target/lambda/BIN/bootstrap copied into DIR (sam build)
#
# With KEYROT_LAMBDA_DIR set (the same variable the CDK app reads), `artifacts` builds nothing: it unpacks
# $KEYROT_LAMBDA_DIR/BIN/bootstrap.zip (a release's zip, or `make build`'s elsewhere) into DIR, so
# `KEYROT_LAMBDA_DIR=dist sam build --build-in-source` needs no Rust toolchain.
#
# The release profile in Cargo.toml (LTO, one codegen unit, strip, opt-level "s") is what shapes the binary;
# the `sim-clock` feature stays off.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

ZIG_PIN="ziglang==0.15.2"
TARGET=aarch64-unknown-linux-gnu

if [ "${1:-}" = artifacts ] && [ -n "${KEYROT_LAMBDA_DIR:-}" ]; then
  dir=${2:?artifacts needs a directory (sam build passes ARTIFACTS_DIR)}
  bin=${3:?artifacts needs a binary name}
  zip="$KEYROT_LAMBDA_DIR/$bin/bootstrap.zip"
  if [ ! -f "$zip" ]; then
    echo "infra-build: $zip does not exist: put the release's $bin zip there, or unset KEYROT_LAMBDA_DIR to build it" >&2
    exit 1
  fi
  mkdir -p "$dir"
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("bootstrap", sys.argv[2])' "$zip" "$dir"
  chmod 755 "$dir/bootstrap"
  echo "infra-build: $bin from $zip (KEYROT_LAMBDA_DIR), nothing compiled" >&2
  exit 0
fi

"$root/scripts/tools.sh"
export PATH="$root/.venv/bin:$PATH"
zig_stamp=".venv/.keyrot-zig-$(printf '%s' "$ZIG_PIN" | sha256sum | cut -c1-12)"
if [ ! -f "$zig_stamp" ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check "$ZIG_PIN"
  touch "$zig_stamp"
  echo "infra-build: installed $ZIG_PIN into .venv" >&2
fi
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$TARGET"; then
  rustup target add "$TARGET"
fi

mode=${1:?usage: $0 zip BIN... | $0 artifacts DIR BIN}
shift
case "$mode" in
  zip)
    [ $# -gt 0 ] || { echo "usage: $0 zip BIN..." >&2; exit 2; }
    bins=()
    for bin in "$@"; do
      if [ ! -f "src/bin/$bin.rs" ]; then echo "infra-build: src/bin/$bin.rs does not exist" >&2; exit 1; fi
      bins+=(--bin "$bin")
    done
    cargo lambda build --release --locked --arm64 --output-format zip "${bins[@]}"
    echo
    echo "arm64 Lambda zips (provided.al2023):"
    for bin in "$@"; do
      zip="target/lambda/$bin/bootstrap.zip"
      printf '  %-52s %9s bytes  (%s)\n' "$zip" "$(stat -c %s "$zip")" "$(du -h "$zip" | cut -f1)"
    done
    ;;
  artifacts)
    dir=${1:?artifacts needs a directory (sam build passes ARTIFACTS_DIR)}
    bin=${2:?artifacts needs a binary name}
    cargo lambda build --release --locked --arm64 --output-format binary --bin "$bin"
    mkdir -p "$dir"
    cp "target/lambda/$bin/bootstrap" "$dir/bootstrap"
    ;;
  *)
    echo "usage: $0 zip BIN... | $0 artifacts DIR BIN" >&2
    exit 2
    ;;
esac
