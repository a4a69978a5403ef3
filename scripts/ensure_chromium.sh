#!/usr/bin/env bash
# Browser tests drive Debian's Chromium with Playwright (executable_path=/usr/bin/chromium).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "Installing Debian's chromium and chromium-driver for the browser tests..."
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
else
  echo "The browser tests need Chromium at /usr/bin/chromium." >&2
  echo "Install it with: sudo apt-get install chromium chromium-driver   (then run make test again)" >&2
  exit 1
fi
