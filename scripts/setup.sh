#!/usr/bin/env bash
# Installs everything Till Agent needs to build, run and test on Debian 12 / Ubuntu.
# Idempotent: packages already present are skipped, so a second run takes seconds.
# Uses only the distribution's package manager, npm's registry and PyPI; downloads nothing else.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# System packages: Tauri's webview (WebKitGTK), OpenSSL headers (rust_socketio links OpenSSL),
# Xvfb + ImageMagick for window screenshots, a D-Bus session bus and x11-utils for the tray and
# single-instance checks of the desktop smoke test, Xorg with the dummy driver and xrandr for the
# two-monitor customer display test (Xvfb has one RandR output: GTK sees one monitor), CUPS
# (daemon and lp) for the test of cups:// printers (it starts its own cupsd; no service is used),
# poppler + zbar for receipt and QR checks, DejaVu fonts for pages rendered by chromium, chromium + node for the browser tests, PostgreSQL
# for the fleet server's tests (they start a throwaway cluster with initdb; no service is used)
# and openssl for their self-signed TLS certificate; lintian and systemd (systemd-analyze,
# systemd-sysusers) for the package checks (scripts/package-check.sh, scripts/package.sh).
APT_PACKAGES=(
  build-essential pkg-config curl wget file ca-certificates
  libssl-dev libwebkit2gtk-4.1-dev libgtk-3-dev libxdo-dev
  libayatana-appindicator3-dev librsvg2-dev
  xvfb xauth imagemagick poppler-utils zbar-tools dbus-daemon x11-utils fonts-dejavu-core
  xserver-xorg-core xserver-xorg-video-dummy x11-xserver-utils
  cups-daemon cups-client
  chromium nodejs npm
  postgresql openssl
  lintian systemd
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  # nodejs/npm may come from elsewhere (nvm, NodeSource): a working binary is enough.
  case "$p" in
    nodejs) command -v node >/dev/null 2>&1 && continue ;;
    npm) command -v npm >/dev/null 2>&1 && continue ;;
  esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # The package's own cluster and service are not used (tests start their own); where the
  # package started one, it keeps running harmlessly.
else
  echo "setup: system packages present"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust (rustup) first" >&2
  exit 1
fi

# npm packages for browser tests (playwright-core only: it never downloads a browser).
if [ -f "$here/ui/tests/package.json" ] && [ ! -d "$here/ui/tests/node_modules/playwright-core" ]; then
  echo "setup: installing npm packages for UI tests"
  (cd "$here/ui/tests" && npm ci --no-audit --no-fund --loglevel=error)
fi

# The OpenAPI validator CI runs on docs/openapi.json (scripts/test.sh), from PyPI.
if ! python3 -c "import openapi_spec_validator" >/dev/null 2>&1; then
  echo "setup: installing openapi-spec-validator"
  spec='openapi-spec-validator>=0.7,<0.10'
  # A distribution's own python3 refuses plain pip installs (PEP 668): then into the user site.
  python3 -m pip install --quiet --disable-pip-version-check "$spec" 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages "$spec"
fi
