#!/usr/bin/env bash
# Installs what building and testing Furrow needs on a fresh Debian machine (run as root, or with
# sudo available). Safe to run again: every step skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# The core and server need a C toolchain and OpenSSL's headers (SQLCipher); the desktop app
# needs WebKitGTK; its end-to-end tests need a virtual display, the WebDriver server for
# WebKitGTK and Chinese fonts (without them every Han character renders as a box).
PACKAGES=(build-essential pkg-config libssl-dev curl
  libwebkit2gtk-4.1-dev xvfb xauth webkit2gtk-driver fonts-noto-cjk)
missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ! command -v node >/dev/null 2>&1; then missing+=(nodejs npm); fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "Rust is not installed: install it with rustup (https://rustup.rs), then run this again." >&2
  exit 1
fi

# tauri-driver bridges WebDriver clients to WebKitWebDriver for the end-to-end tests.
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
if [ ! -x "$CARGO_BIN/tauri-driver" ] && ! command -v tauri-driver >/dev/null 2>&1; then
  echo "==> installing tauri-driver"
  cargo install tauri-driver --version ^2 --locked
fi

# The server's contract test (server/tests/contract.rs) drives the served OpenAPI document with a
# property-based API tester from PyPI, at the version the test was written against, in a virtual
# environment of its own so no system Python is touched.
API_TESTER_VERSION=4.32.5
API_TESTER_ENV="${XDG_CACHE_HOME:-$HOME/.cache}/furrow/api-tester"
if ! "$API_TESTER_ENV/bin/schemathesis" --version 2>/dev/null | grep -q "$API_TESTER_VERSION"; then
  echo "==> installing the API tester for the server's contract test"
  if ! python3 -m venv --help >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv
  fi
  rm -rf "$API_TESTER_ENV"
  python3 -m venv "$API_TESTER_ENV"
  "$API_TESTER_ENV/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$API_TESTER_VERSION"
fi

# The front end's packages, exactly as locked; skipped when node_modules already matches.
if [ ! -f ui/node_modules/.package-lock.json ] || [ ui/package-lock.json -nt ui/node_modules/.package-lock.json ]; then
  echo "==> installing the front end's packages"
  # npm 11 refuses `npm ci` when a package's platform-only optional dependency (Vite's Windows
  # helper) is absent from the lock file; `npm install` then installs the same locked versions.
  (cd ui && { npm ci --no-audit --no-fund || npm install --no-audit --no-fund; })
fi
