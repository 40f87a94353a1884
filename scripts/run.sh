#!/usr/bin/env bash
# Sets everything up and opens Furrow with demo data: installs what is missing, builds the front
# end, the app and the sync server, starts a local furrow-server on its embedded default (SQLite
# in ~/.local/share/furrow-server, 127.0.0.1:8470) with a demo account and the demo villages,
# and opens the window on a separate demo data directory; the app signs in to the demo account,
# syncs, and adds demo households (clearly marked 演示 / demo) when there are none yet.
#
#   FURROW_DATA_DIR          where the app's demo data lives (default: ~/.local/share/furrow-demo)
#   FURROW_SERVER_DATA_DIR   where the local server keeps its data (default: ~/.local/share/furrow-server)
#   FURROW_PASSPHRASE        the demo device passphrase (default: demo-passphrase-2024)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "==> building the front end"
(cd ui && npm run build)
echo "==> building the app and the server"
cargo build -p furrow-app -p furrow-server --locked

DATA_DIR="${FURROW_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/furrow-demo}"
SERVER_DATA_DIR="${FURROW_SERVER_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/furrow-server}"
mkdir -p "$DATA_DIR" "$SERVER_DATA_DIR"
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

# The server reads FURROW_DATA_DIR too: it is always given its own directory, never the app's.
server() { env -u FURROW_DATA_DIR "$TARGET_DIR/debug/furrow-server" "$@" --data-dir "$SERVER_DATA_DIR"; }
DEMO_USER=demo
DEMO_PASSWORD=qingshan-walnut-2024
DEMO_VILLAGES=(530724100201 530724100202 530724100203)
DEMO_NAMES=("演示·青山村" "演示·石门村" "演示·核桃坪村")
for index in 0 1 2; do
  server village add --code "${DEMO_VILLAGES[$index]}" --name "${DEMO_NAMES[$index]}" >/dev/null
done
# The demo account exists after the first run; adding it again is refused, and its password is
# then set to the demo password (an older run may have given it another one).
if ! printf '%s\n' "$DEMO_PASSWORD" | server assistant add --username "$DEMO_USER" --password-stdin \
  --village "${DEMO_VILLAGES[@]}" >/dev/null 2>&1; then
  printf '%s\n' "$DEMO_PASSWORD" | server assistant reset-password --username "$DEMO_USER" --password-stdin >/dev/null
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/8470) 2>/dev/null; then
  echo "==> starting the local sync server on http://127.0.0.1:8470 (data and log: $SERVER_DATA_DIR)"
  env -u FURROW_DATA_DIR "$TARGET_DIR/debug/furrow-server" serve --data-dir "$SERVER_DATA_DIR" >>"$SERVER_DATA_DIR/furrow-server.log" 2>&1 &
  SERVER_PID=$!
  trap 'kill "$SERVER_PID" 2>/dev/null || true; [ -n "${XVFB_PID:-}" ] && kill "$XVFB_PID" 2>/dev/null || true' EXIT
  # The app signs in as soon as it opens, so the server must be listening first.
  for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/8470) 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "furrow-server did not start; see $SERVER_DATA_DIR/furrow-server.log" >&2; exit 1; }
    sleep 0.1
  done
fi
echo "==> demo account (demo data): server http://127.0.0.1:8470, user $DEMO_USER, password $DEMO_PASSWORD"

# The sign-in screen fills in the demo account and signs in at once; the app then syncs, which
# brings the demo villages (and any demo households an earlier run sent). When neither the app
# nor the server has a household yet, the app adds 200 demo households and sends them. Demo
# villages carry the server's own row ids, so a second run, or a run with a new data directory,
# never doubles the villages or the households.
export FURROW_DEMO_SIGN_IN="http://127.0.0.1:8470 $DEMO_USER $DEMO_PASSWORD 200"
# The demo data directory is encrypted like any other; the demo passphrase opens it without a
# person at the keyboard (a first run sets it). Real laptops never set FURROW_PASSPHRASE: the
# window asks for the passphrase instead.
export FURROW_PASSPHRASE="${FURROW_PASSPHRASE:-demo-passphrase-2024}"
echo "==> demo device passphrase (demo data only): $FURROW_PASSPHRASE"
echo "==> opening Furrow (data: $DATA_DIR; 200 demo households, marked 演示, unless the server has them already)"
"$TARGET_DIR/debug/furrow-app" --data-dir "$DATA_DIR"
