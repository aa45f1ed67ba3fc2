#!/usr/bin/env bash
# make bench: builds the release binaries (native, for the measurements) and the arm64 Lambda zips (`make
# build`), then measures keyrot against a fresh moto (scripts/moto.sh) and keyrot-sim with bench/bench.py:
# cold start, peak memory, API calls per rotation, rotation latency, one grace keeper pass over 1,000 and
# 5,000 secrets, and the zips' sizes. The table goes to stdout; everything else to stderr. JSON (and the same
# table as Markdown) in target/bench/. Nothing it measures is asserted anywhere.
#
#   scripts/bench.sh                                  the full run (builds included)
#   scripts/bench.sh --cold-runs 5 --fleet 100,500    arguments go to bench/bench.py (see --help)
#   KEYROT_BENCH_SKIP_ZIPS=1 scripts/bench.sh         without the arm64 build (zips reported as found)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

"$root/scripts/tools.sh" >&2
echo "bench: building the release binaries for this machine" >&2
cargo build --release --locked -p keyrot --bin keyrot-rotator --bin keyrot-grace-keeper \
  --example bench_bare_lambda -p keyrot-sim --bin keyrot-sim >&2
if [ "${KEYROT_BENCH_SKIP_ZIPS:-}" != 1 ]; then
  echo "bench: building the arm64 Lambda zips (make build)" >&2
  "$root/scripts/infra-build.sh" zip keyrot-rotator keyrot-grace-keeper >&2
fi
echo "bench: measuring (a few minutes)" >&2
"$root/scripts/moto.sh" "$root/.venv/bin/python" "$root/bench/bench.py" "$@"
