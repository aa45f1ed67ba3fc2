#!/usr/bin/env bash
# Downloads the official provider API specs the contract tests read into DIR (default .specs), from the
# providers' published URLs (pinned commits where the provider publishes through git), so that
#   scripts/fetch-specs.sh && KEYROT_SPECS_DIR=.specs make test
# runs the contract tests on a machine that has the network. Nothing is committed: the specs are the
# providers', and the tests find them only through KEYROT_SPECS_DIR.
set -euo pipefail
dir="${1:-.specs}"
mkdir -p "$dir"
fetch() {
  local file="$1" url="$2"
  echo "fetching $file from $url"
  curl -fsSL --retry 2 -o "$dir/$file.part" "$url"
  mv "$dir/$file.part" "$dir/$file"
}
fetch openai-openapi.json \
  https://raw.githubusercontent.com/openai/openai-openapi/f85dbe223d40e1a31cba812ab2d755c7e98a92a3/openapi.json
fetch vercel-openapi.json \
  https://raw.githubusercontent.com/vercel/sdk/1aada4a8c647055674701491c76a6ff2ff645cfb/vercel-spec.json
fetch render-openapi.json https://api-docs.render.com/openapi/render-public-api-1.json
# Anthropic publishes its spec through its SDKs' Stainless configuration; the whole spec serves where the
# tests expect an excerpt of it (they read only the paths they exercise).
fetch anthropic-openapi-excerpt.yaml \
  "https://storage.googleapis.com/stainless-sdk-openapi-specs/anthropic%2Fanthropic-a49e89deec4e00d1da490808099d66e2001531b12d8666a7f5d0b496f760440d.yml"
echo "specs in $dir: run KEYROT_SPECS_DIR=$dir make test"
