#!/usr/bin/env bash
# Runs the fuzz targets (fuzz/: the rotation-event and managed-secret parsers) for a few seconds each.
# cargo-fuzz needs nightly compiler flags; RUSTC_BOOTSTRAP=1 lets this machine's stable toolchain take them.
#   scripts/fuzz.sh [SECONDS_PER_TARGET]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-15}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz --version 0.13.2
fi
export RUSTC_BOOTSTRAP=1
for target in event secret; do
  echo "fuzz: $target for ${seconds}s"
  cargo fuzz run "$target" -- -max_total_time="$seconds" 2>&1 | tail -n 2
done
