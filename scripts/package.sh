#!/usr/bin/env bash
# Builds Till Agent's packages and update manifests into target/packages/.
#
#   scripts/package.sh                 # release build; headless .deb; desktop .deb and .rpm through
#                                      # Tauri's bundler; signed stable and pilot manifests
#   scripts/package.sh --no-desktop    # as above without the desktop bundles (no tauri-cli needed)
#   scripts/package.sh --headless-only --binary target/debug/till-agent [--version 0.1.1] [--out DIR] [--fast]
#                                      # only the headless .deb, from an already-built binary (CI)
#
# Signing key: TILL_SIGNING_KEY (the secret key, Tauri's base64 or minisign text) or
# TILL_SIGNING_KEY_FILE, with TILL_SIGNING_KEY_PASSWORD when it is encrypted, and the matching
# public key in TILL_UPDATE_PUBKEY (else it is the test key's). Without a key, a test key is
# generated in target/packages/test-key/ and said so loudly: such packages are for tests only.
# Manifest URLs: TILL_UPDATE_BASE_URL (default https://updates.example.invalid/till-agent/).
# Installs what it needs through scripts/setup.sh and cargo (tauri-cli from crates.io).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

headless_only=0; no_desktop=0; binary=""; version=""; out="$here/target/packages"; fast=0
while [ $# -gt 0 ]; do
  case "$1" in
    --headless-only) headless_only=1 ;;
    --no-desktop) no_desktop=1 ;;
    --binary) binary="$2"; shift ;;
    --version) version="$2"; shift ;;
    --out) out="$2"; shift ;;
    --fast) fast=1 ;;   # gzip -1 instead of xz: for tests, where seconds matter more than bytes
    *) echo "package.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$version" ] || version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
mkdir -p "$out"
start=$(date +%s)

if [ "$headless_only" = 0 ]; then
  bash scripts/setup.sh
  echo "== release build (till-agent, till-release)"
  cargo build --locked --release -p till-agent
  cargo build --locked --release -p till-updater --features signing --bin till-release
  binary="target/release/till-agent"
  release_tool="target/release/till-release"
else
  [ -n "$binary" ] || { echo "package.sh: --headless-only needs --binary PATH" >&2; exit 2; }
  release_tool=""
fi

# --- the update key ------------------------------------------------------------------------
key_file=""
pub=""
if [ -n "${TILL_SIGNING_KEY:-}" ]; then
  key_file="$out/.signing-key"; (umask 077; printf '%s' "$TILL_SIGNING_KEY" > "$key_file")
elif [ -n "${TILL_SIGNING_KEY_FILE:-}" ]; then
  key_file="$TILL_SIGNING_KEY_FILE"
fi
if [ -n "$key_file" ]; then
  pub="${TILL_UPDATE_PUBKEY:?TILL_UPDATE_PUBKEY: the public half of the signing key}"
elif [ -n "$release_tool" ]; then
  # Tauri's bundler signs only with an encrypted key, so the test key has a password too; it is
  # written next to the key (a test key protects nothing).
  if [ ! -f "$out/test-key/till-update.key" ] || [ ! -f "$out/test-key/password" ]; then
    echo "package.sh: WARNING: no TILL_SIGNING_KEY: generating a TEST key in $out/test-key (not for stores)"
    rm -rf "$out/test-key"
    mkdir -p "$out/test-key"
    (umask 077; printf 'till-agent-test-key' > "$out/test-key/password")
    TILL_SIGNING_KEY_PASSWORD=till-agent-test-key "$release_tool" keygen --out-dir "$out/test-key" >/dev/null
  fi
  key_file="$out/test-key/till-update.key"
  export TILL_SIGNING_KEY_PASSWORD
  TILL_SIGNING_KEY_PASSWORD=$(cat "$out/test-key/password")
  pub=$(cat "$out/test-key/till-update.pub")
else
  pub="${TILL_UPDATE_PUBKEY:-}"
fi

# --- the headless .deb ----------------------------------------------------------------------
build_headless_deb() {
  local arch="amd64" stage tmp pkg schema
  case "$(uname -m)" in aarch64) arch=arm64 ;; x86_64) arch=amd64 ;; esac
  tmp=$(mktemp -d); stage="$tmp/root"
  install -d "$stage/DEBIAN" "$stage/usr/bin" "$stage/usr/lib/till-agent" "$stage/lib/systemd/system" \
    "$stage/usr/lib/sysusers.d" "$stage/etc/till-agent" \
    "$stage/usr/share/doc/till-agent" "$stage/usr/share/man/man1"
  strip --strip-unneeded -o "$stage/usr/bin/till-agent" "$binary"
  chmod 0755 "$stage/usr/bin/till-agent"
  echo "$version" > "$stage/usr/lib/till-agent/package-version"
  install -m 0644 packaging/systemd/till-agent.service packaging/systemd/till-agent-update.path \
    packaging/systemd/till-agent-update.service "$stage/lib/systemd/system/"
  install -m 0644 packaging/sysusers/till-agent.conf "$stage/usr/lib/sysusers.d/till-agent.conf"
  install -m 0644 packaging/deb/config.toml "$stage/etc/till-agent/config.toml"
  install -m 0644 packaging/deb/copyright "$stage/usr/share/doc/till-agent/copyright"
  if [ -n "$pub" ]; then
    install -d "$stage/usr/share/till-agent"
    printf '%s\n' "$pub" > "$stage/usr/share/till-agent/update-key.pub"
    chmod 0644 "$stage/usr/share/till-agent/update-key.pub"
  fi
  printf 'till-agent (%s) stable; urgency=medium\n\n  * Release %s; see the project history.\n\n -- Till Agent maintainers <maintainers@example.invalid>  %s\n' \
    "$version" "$version" "$(date -R -u)" | gzip -9n > "$stage/usr/share/doc/till-agent/changelog.gz"
  # A short manual page made from the binary's own help, so it never disagrees with it.
  {
    echo '.TH TILL-AGENT 1 "" "till-agent '"$version"'" "User Commands"'
    echo '.SH NAME'; echo 'till-agent \- connects POS software to payment providers'
    echo '.SH SYNOPSIS'; echo '.B till-agent'; echo '\fICOMMAND\fR [\fIOPTIONS\fR]'
    echo '.SH DESCRIPTION'; echo '.nf'
    "$stage/usr/bin/till-agent" --help | sed 's/\\/\\\\/g; s/^\./\\\&./'
    echo '.fi'
    echo '.SH FILES'; echo '/etc/till-agent/config.toml, /var/lib/till-agent (journal, logs)'
  } | gzip -9n > "$stage/usr/share/man/man1/till-agent.1.gz"
  # This build's journal schema, for preinst's downgrade check: migrate an empty journal, read it.
  mkdir -p "$tmp/schema"; : > "$tmp/schema/journal.sqlite3"
  TILL_AGENT_LOG=off "$stage/usr/bin/till-agent" migrate --config /dev/null --data-dir "$tmp/schema" >/dev/null
  schema=$(TILL_AGENT_LOG=off "$stage/usr/bin/till-agent" journal-schema --config /dev/null --data-dir "$tmp/schema")
  for s in preinst postinst prerm postrm; do
    sed -e "s/@SCHEMA@/$schema/g" -e "s/@VERSION@/$version/g" "packaging/deb/$s" > "$stage/DEBIAN/$s"
    chmod 0755 "$stage/DEBIAN/$s"
  done
  echo /etc/till-agent/config.toml > "$stage/DEBIAN/conffiles"
  # Library dependencies as Debian computes them.
  mkdir -p "$tmp/debian"; printf 'Source: till-agent\n\nPackage: till-agent\nArchitecture: any\n' > "$tmp/debian/control"
  local shlibs
  shlibs=$(cd "$tmp" && dpkg-shlibdeps -O "$stage/usr/bin/till-agent" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
  cat > "$stage/DEBIAN/control" <<CONTROL
Package: till-agent
Version: $version
Architecture: $arch
Maintainer: Till Agent maintainers <maintainers@example.invalid>
Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)
Depends: ${shlibs}, systemd
Conflicts: till-agent-desktop
Section: net
Priority: optional
Homepage: https://example.invalid/till-agent
Description: payment agent connecting POS software to payment providers
 Till Agent runs on a store's till PC and serves a local payment API on
 127.0.0.1:8003 for POS software, journaling every payment in SQLite before
 and after each call to the payment provider. This package holds the headless
 agent: the till-agent command and a sandboxed systemd service with its state
 in /var/lib/till-agent and its configuration in /etc/till-agent/config.toml,
 and signed automatic updates.
CONTROL
  (cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum > DEBIAN/md5sums)
  chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles" "$stage/DEBIAN/md5sums"
  pkg="$out/till-agent_${version}_${arch}.deb"
  if [ "$fast" = 1 ]; then
    dpkg-deb --root-owner-group -Zgzip -z1 --build "$stage" "$pkg" >/dev/null
  else
    dpkg-deb --root-owner-group -Zxz --build "$stage" "$pkg" >/dev/null
  fi
  rm -rf "$tmp"
  echo "$pkg"
}

echo "== headless package"
headless_deb=$(build_headless_deb)
echo "   $headless_deb"

if [ "$headless_only" = 1 ]; then
  echo "== packaged in $(( $(date +%s) - start )) s"
  exit 0
fi

# --- the desktop packages (Tauri's bundler) -------------------------------------------------
packages=(--package "linux-$(uname -m)-headless-deb=$headless_deb=${TILL_UPDATE_BASE_URL:-https://updates.example.invalid/till-agent/}$(basename "$headless_deb")")
if [ "$no_desktop" = 0 ]; then
if ! cargo tauri --version 2>/dev/null | grep -q '^tauri-cli 2'; then
  echo "== installing tauri-cli from crates.io (compiles once, ~10 min on 2 cores)"
  cargo install tauri-cli --version '^2' --locked
fi
echo "== desktop bundles (deb, rpm) through Tauri"
export TAURI_SIGNING_PRIVATE_KEY
TAURI_SIGNING_PRIVATE_KEY=$(cat "$key_file")
export TAURI_SIGNING_PRIVATE_KEY_PASSWORD="${TILL_SIGNING_KEY_PASSWORD:-}"
# The project's public key goes into the app's updater configuration for this build. The CLI
# looks for the app in src-tauri/ (TAURI_APP_PATH) while tauri.conf.json sits at the root, so the
# paths it resolves from the app directory are given absolute.
conf_override=$(mktemp --suffix=.json)
cat > "$conf_override" <<JSON
{"build":{"frontendDist":"$here/ui"},
 "bundle":{"active":true,"createUpdaterArtifacts":true,
   "icon":["$here/icons/128x128.png","$here/icons/32x32.png","$here/icons/icon.png","$here/icons/icon.ico"]},
 "plugins":{"updater":{"pubkey":"$pub"}}}
JSON
ln -sf ../tauri.conf.json src-tauri/tauri.conf.json
trap 'rm -f "$here/src-tauri/tauri.conf.json" "$conf_override"' EXIT
TAURI_APP_PATH="$here/src-tauri" cargo tauri build --bundles deb,rpm --config "$conf_override" -- --locked
bundle_dir=target/release/bundle
# Tauri names the files after productName ("Till Agent Desktop_0.1.0_amd64.deb"); a space has
# no place in an update URL or a shell command, so they are copied under the package's own name.
base="${TILL_UPDATE_BASE_URL:-https://updates.example.invalid/till-agent/}"
deb_arch=$(dpkg --print-architecture)
desktop_deb="$out/till-agent-desktop_${version}_${deb_arch}.deb"
desktop_rpm="$out/till-agent-desktop-${version}-1.$(uname -m).rpm"
cp "$(ls "$bundle_dir"/deb/*"_${version}_"*.deb | head -1)" "$desktop_deb"
cp "$(ls "$bundle_dir"/rpm/*"-${version}-"*.rpm | head -1)" "$desktop_rpm"
packages+=(--package "linux-$(uname -m)-deb=$desktop_deb=${base}$(basename "$desktop_deb")")
packages+=(--package "linux-$(uname -m)-rpm=$desktop_rpm=${base}$(basename "$desktop_rpm")")
fi

# --- manifests ----------------------------------------------------------------------------
for channel in stable pilot; do
  "$release_tool" manifest --key "$key_file" --channel "$channel" --version "$version" --out-dir "$out" \
    "${packages[@]}" >/dev/null
done
rm -f "$out/.signing-key"
echo "== lintian (headless package)"
lintian --fail-on error --allow-root "$headless_deb" || exit 1
echo "== packages in $out after $(( $(date +%s) - start )) s:"
ls -la "$out"
