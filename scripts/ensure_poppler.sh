#!/usr/bin/env bash
# The report print tests render PDFs with Debian's poppler-utils (pdftoppm for page images, pdftotext for
# the text layer).
set -euo pipefail
if command -v pdftoppm >/dev/null && command -v pdftotext >/dev/null; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "Installing Debian's poppler-utils for the report print tests..."
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq poppler-utils >/dev/null
else
  echo "The report print tests need pdftoppm and pdftotext (poppler-utils)." >&2
  echo "Install them with: sudo apt-get install poppler-utils   (then run make test again)" >&2
  exit 1
fi
