#!/usr/bin/env bash
# Runs every test of Furrow: installs what the tests need, then the whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace --locked
