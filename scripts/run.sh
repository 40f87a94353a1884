#!/usr/bin/env bash
# Sets everything up and opens Furrow with demo data: installs what is missing, builds the front
# end and the app, seeds demo villages and households (clearly marked 演示 / demo) into a
# separate demo data directory, and opens the window.
#
#   FURROW_DATA_DIR   where the demo's data lives (default: ~/.local/share/furrow-demo)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "==> building the front end"
(cd ui && npm run build)
echo "==> building the app"
cargo build -p furrow-app --locked

DATA_DIR="${FURROW_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/furrow-demo}"
mkdir -p "$DATA_DIR"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"

if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  # A machine without a screen (a server, CI) still runs the app, on a virtual display, so the
  # command can be tried anywhere; screenshots come from the end-to-end tests.
  echo "==> no display: starting a virtual one on :98"
  Xvfb :98 -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
  XVFB_PID=$!
  trap 'kill "$XVFB_PID" 2>/dev/null || true' EXIT
  export DISPLAY=:98
  sleep 1
fi

echo "==> opening Furrow (data: $DATA_DIR; 200 demo households on first start, marked 演示)"
"$TARGET_DIR/debug/furrow-app" --data-dir "$DATA_DIR" --demo-households 200
