#!/usr/bin/env bash
# Regenerates Till Agent's application and tray icons with ImageMagick.
# The mark: a teal rounded square holding a white "QR card" (three finder squares) with "TA" in the
# free corner, so the icon reads as "the till's QR agent" even at 32x32. The tray icon is a simpler
# version (finder squares only would be unreadable at 32 px, so it keeps one finder and the letters).
#
# Usage: icons/generate.sh   (writes icon.png 512x512, 128x128.png, 32x32.png, icon.ico, tray.png)
# Uses Debian's /usr/bin/convert by full path: another `convert` earlier in PATH may not be ImageMagick.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
C="${IMAGEMAGICK_CONVERT:-/usr/bin/convert}"
teal='#0f766e'
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# draw args for one QR finder pattern: 7x7 modules of size m at (x, y)
finder() {
  local x=$1 y=$2 m=$3
  F+=(-fill "$teal" -draw "rectangle $x,$y $((x + 7 * m - 1)),$((y + 7 * m - 1))")
  F+=(-fill white -draw "rectangle $((x + m)),$((y + m)) $((x + 6 * m - 1)),$((y + 6 * m - 1))")
  F+=(-fill "$teal" -draw "rectangle $((x + 2 * m)),$((y + 2 * m)) $((x + 5 * m - 1)),$((y + 5 * m - 1))")
}

# The master icon at 512x512.
m=18
F=()
finder 104 104 "$m"
finder $((408 - 7 * m)) 104 "$m"
finder 104 $((408 - 7 * m)) "$m"
"$C" -size 512x512 xc:none \
  -fill "$teal" -draw "roundrectangle 8,8 503,503 96,96" \
  -fill white -draw "roundrectangle 72,72 439,439 44,44" \
  "${F[@]}" \
  -fill "$teal" -font DejaVu-Sans-Bold -pointsize 120 -gravity center -annotate +80+78 "TA" \
  -define png:color-type=6 "PNG32:$tmp/icon.png"

cp "$tmp/icon.png" "$here/icon.png"
"$C" "$tmp/icon.png" -resize 128x128 -define png:color-type=6 "PNG32:$here/128x128.png"
"$C" "$tmp/icon.png" -resize 32x32 -define png:color-type=6 "PNG32:$here/32x32.png"
# Windows: tauri-build embeds icons/icon.ico into the executable's resources.
"$C" "$tmp/icon.png" -define icon:auto-resize=256,128,64,48,32,16 "$here/icon.ico"

# Tray icon: drawn at 256 and scaled, bold letters on the teal square, one finder mark.
F=()
finder 28 28 10
"$C" -size 256x256 xc:none \
  -fill "$teal" -draw "roundrectangle 4,4 251,251 48,48" \
  -fill white -draw "rectangle 24,24 $((28 + 70 + 3)),$((28 + 70 + 3))" \
  "${F[@]}" \
  -fill white -font DejaVu-Sans-Bold -pointsize 120 -gravity center -annotate +20+34 "TA" \
  -resize 32x32 -define png:color-type=6 "PNG32:$here/tray.png"

echo "icons written to $here"
