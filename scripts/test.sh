#!/usr/bin/env bash
# Runs every test of Furrow: installs what the tests need, builds the front end, runs its unit
# tests, then the whole workspace's tests, including the end-to-end tests of the real app window
# (under a virtual display when there is none).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "==> front end: build and unit tests"
(cd ui && npm run build && npx vitest run)

if [ -z "${DISPLAY:-}" ]; then
  for number in $(seq 99 140); do
    if [ ! -e "/tmp/.X${number}-lock" ]; then break; fi
  done
  echo "==> starting a virtual display :$number"
  Xvfb ":$number" -screen 0 1920x1080x24 -nolisten tcp >/dev/null 2>&1 &
  XVFB_PID=$!
  trap 'kill "$XVFB_PID" 2>/dev/null || true' EXIT
  export DISPLAY=":$number"
  for _ in $(seq 1 100); do [ -e "/tmp/.X11-unix/X${number}" ] && break; sleep 0.1; done
fi

echo "==> cargo test --workspace"
cargo test --workspace --locked

if [ -f artifacts/figures.txt ]; then
  echo "==> desktop figures (artifacts/figures.txt)"
  cat artifacts/figures.txt
fi
