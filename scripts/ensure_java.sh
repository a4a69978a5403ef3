#!/usr/bin/env bash
# The Spark engine's tests run PySpark in local mode, which needs a Java 17 runtime (Debian's package).
set -euo pipefail
if command -v java >/dev/null && java -version 2>&1 | grep -q 'version "17'; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "Installing Debian's openjdk-17-jre-headless for the Spark engine's tests..."
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
else
  echo "The Spark engine's tests need Java 17 (java on PATH)." >&2
  echo "Install it with: sudo apt-get install openjdk-17-jre-headless   (then run make test again)" >&2
  exit 1
fi
