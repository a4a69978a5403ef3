#!/usr/bin/env bash
# Label Studio for Vigil: install it (cached, in its own virtualenv outside the repository) and start it
# on 127.0.0.1 with an admin user and an API token provisioned automatically.
#
#   scripts/labelstudio.sh install
#   scripts/labelstudio.sh start [--port 8080] [--data-dir .vigil/labelstudio] [--username EMAIL]
#                                [--password PW] [--token 40-HEX] [--timeout SECONDS]
#                                [--env-file FILE] [--detach]
#   scripts/labelstudio.sh stop  [--data-dir .vigil/labelstudio]
#   scripts/labelstudio.sh env   [--data-dir .vigil/labelstudio]   # prints `export VIGIL_LABEL_STUDIO_*=...`
#
# Label Studio's dependencies (Django and friends) conflict with Vigil's, hence its own virtualenv at
# ${VIGIL_LS_VENV:-$HOME/.cache/vigil/labelstudio-venv}; `install` does nothing when it is already there.
# `start` keeps the credentials it generated in <data-dir>/credentials (mode 600) and reuses them later,
# starts the server (pid in <data-dir>/labelstudio.pid, log in <data-dir>/labelstudio.log), waits until it
# answers and the token is accepted, prints the URL and the sign-in, and writes --env-file (mode 600:
# VIGIL_LABEL_STUDIO_URL, VIGIL_LABEL_STUDIO_TOKEN, LS_SIGNIN) for `source`. It then stays in the foreground
# until Label Studio exits or it is interrupted (which stops Label Studio); with --detach it returns at once
# and `stop` ends the server later.
# Label Studio's SSRF protection refuses webhooks to loopback addresses; this instance listens on 127.0.0.1
# for Vigil and calls `vigil serve` back on 127.0.0.1, so the script turns it off
# (VIGIL_LS_SSRF_PROTECTION=true turns it back on, e.g. when `vigil serve` has a public URL).
set -euo pipefail

VENV="${VIGIL_LS_VENV:-$HOME/.cache/vigil/labelstudio-venv}"
SPEC='label-studio>=1.23,<1.24'
PYTHON="${PYTHON:-python3}"

die() { echo "labelstudio.sh: $*" >&2; exit 1; }

installed() {
  [ -x "$VENV/bin/label-studio" ] && "$VENV/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as m, sys
sys.exit(0 if m.version("label-studio").startswith("1.23.") else 1)
PY
}

cmd_install() {
  if installed; then
    echo "Label Studio $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("label-studio"))') is installed in $VENV"
    return 0
  fi
  echo "Installing Label Studio ($SPEC) into $VENV (about 1 GB, once) ..."
  mkdir -p "$(dirname "$VENV")"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$SPEC"
  installed || die "the install in $VENV did not produce a working label-studio; delete $VENV and retry"
  echo "Label Studio installed in $VENV"
}

PORT="${VIGIL_LS_PORT:-8080}"
DATA_DIR="${VIGIL_LS_DATA_DIR:-.vigil/labelstudio}"
USERNAME="" PASSWORD="" TOKEN="" ENV_FILE="" DETACH=0
TIMEOUT="${VIGIL_LS_START_TIMEOUT:-600}"

parse() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --port) PORT="$2"; shift 2 ;;
      --data-dir) DATA_DIR="$2"; shift 2 ;;
      --username) USERNAME="$2"; shift 2 ;;
      --password) PASSWORD="$2"; shift 2 ;;
      --token) TOKEN="$2"; shift 2 ;;
      --timeout) TIMEOUT="$2"; shift 2 ;;
      --env-file) ENV_FILE="$2"; shift 2 ;;
      --detach) DETACH=1; shift ;;
      *) die "unknown option $1 (see the header of $0)" ;;
    esac
  done
  mkdir -p "$DATA_DIR"
  DATA_DIR="$(cd "$DATA_DIR" && pwd)"
  PIDFILE="$DATA_DIR/labelstudio.pid"
  CREDS="$DATA_DIR/credentials"
}

load_credentials() {
  if [ -f "$CREDS" ]; then
    # shellcheck disable=SC1090
    . "$CREDS"
  fi
  USERNAME="${USERNAME:-${LS_USERNAME:-admin@example.com}}"
  PASSWORD="${PASSWORD:-${LS_PASSWORD:-$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(12))')}}"
  TOKEN="${TOKEN:-${LS_TOKEN:-$("$PYTHON" -c 'import secrets; print(secrets.token_hex(20))')}}"
  [[ "$TOKEN" =~ ^[0-9a-f]{40}$ ]] || die "--token must be 40 lower-case hex characters"
  (umask 077; printf 'LS_USERNAME=%q\nLS_PASSWORD=%q\nLS_TOKEN=%q\nLS_PORT=%q\n' \
      "$USERNAME" "$PASSWORD" "$TOKEN" "$PORT" > "$CREDS")
}

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

wait_ready() {
  "$VENV/bin/python" - "$PORT" "$TOKEN" "$TIMEOUT" "$PIDFILE" <<'PY'
import os, sys, time, urllib.request, urllib.error
port, token, timeout, pidfile = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
base = f"http://127.0.0.1:{port}"
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        os.kill(int(open(pidfile).read()), 0)
    except (OSError, ValueError):
        sys.exit("Label Studio exited during start-up; see labelstudio.log in the data dir")
    try:
        req = urllib.request.Request(base + "/api/current-user/whoami", headers={"Authorization": f"Token {token}"})
        with urllib.request.urlopen(req, timeout=5) as r:
            if r.status == 200:
                sys.exit(0)
    except (urllib.error.URLError, OSError):
        pass
    time.sleep(2)
sys.exit(f"Label Studio did not answer on {base} within {timeout:.0f} s; see labelstudio.log in the data dir")
PY
}

cmd_start() {
  parse "$@"
  installed || cmd_install
  load_credentials
  if running; then
    echo "Label Studio is already running (pid $(cat "$PIDFILE"))"
  else
    echo "Starting Label Studio on http://127.0.0.1:$PORT (data in $DATA_DIR; the first start migrates its database, which takes a few minutes) ..."
    LABEL_STUDIO_BASE_DATA_DIR="$DATA_DIR" LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK=true \
    DJANGO_DB=sqlite SENTRY_DSN="" FRONTEND_SENTRY_DSN="" COLLECT_ANALYTICS=false \
    SSRF_PROTECTION_ENABLED="${VIGIL_LS_SSRF_PROTECTION:-false}" \
      setsid "$VENV/bin/label-studio" start --no-browser --port "$PORT" --internal-host 127.0.0.1 \
        --data-dir "$DATA_DIR" --enable-legacy-api-token --user-token "$TOKEN" \
        --username="$USERNAME" --password="$PASSWORD" --log-level WARNING \
        > "$DATA_DIR/labelstudio.log" 2>&1 < /dev/null &
    echo $! > "$PIDFILE"
  fi
  wait_ready || { cmd_stop_quiet; exit 1; }
  if [ -n "$ENV_FILE" ]; then
    (umask 077; printf 'VIGIL_LABEL_STUDIO_URL=%q\nVIGIL_LABEL_STUDIO_TOKEN=%q\nLS_SIGNIN=%q\n' \
        "http://127.0.0.1:$PORT" "$TOKEN" "(sign in as $USERNAME / $PASSWORD)" > "$ENV_FILE")
  fi
  echo "Label Studio is up: http://127.0.0.1:$PORT"
  echo "  sign in as $USERNAME with password $PASSWORD"
  echo "  API token: in $CREDS (use: eval \"\$($0 env --data-dir $DATA_DIR)\")"
  if [ "$DETACH" = 0 ]; then
    trap 'cmd_stop_quiet; exit 0' INT TERM
    pid="$(cat "$PIDFILE")"
    while kill -0 "$pid" 2>/dev/null; do sleep 2; done
    rm -f "$PIDFILE"
    die "Label Studio exited; see $DATA_DIR/labelstudio.log"
  fi
}

cmd_stop_quiet() {
  if [ -f "$PIDFILE" ]; then
    pid="$(cat "$PIDFILE")"
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
  fi
}

cmd_stop() { parse "$@"; cmd_stop_quiet; echo "Label Studio stopped"; }

cmd_env() {
  parse "$@"
  [ -f "$CREDS" ] || die "no credentials in $DATA_DIR yet; run: $0 start --data-dir $DATA_DIR"
  # shellcheck disable=SC1090
  . "$CREDS"
  printf 'export VIGIL_LABEL_STUDIO_URL=http://127.0.0.1:%s\nexport VIGIL_LABEL_STUDIO_TOKEN=%s\n' "$LS_PORT" "$LS_TOKEN"
}

case "${1:-}" in
  install) cmd_install ;;
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  env) shift; cmd_env "$@" ;;
  *) die "usage: $0 install | start [options] | stop [--data-dir DIR] | env [--data-dir DIR]" ;;
esac
