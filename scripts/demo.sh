#!/usr/bin/env bash
# `make demo`: build the demo workspace once, then run MLflow, Label Studio, `vigil serve` (schedules and
# webhooks) and the Vigil app on 127.0.0.1.
# Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DIR=${VIGIL_DEMO_DIR:-.vigil}
HOST=127.0.0.1
APP_PORT=${APP_PORT:-8501}
MLFLOW_PORT=${MLFLOW_PORT:-5000}
LS_PORT=${LS_PORT:-8080}
SERVE_PORT=${SERVE_PORT:-8765}

if [ ! -f "$DIR/vigil.toml" ] || [ ! -f "$DIR/vigil.duckdb" ]; then
  echo "Building the demo workspace in $DIR (first run only)..."
  "$BIN/vigil" demo --dir "$DIR"
fi
DIR=$(cd "$DIR" && pwd)
export VIGIL_CONFIG="$DIR/vigil.toml"

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "Stopping Vigil demo..."
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

wait_http() {  # url, seconds, name
  for _ in $(seq 1 "$2"); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
    sleep 1
  done
  echo "$3 did not answer at $1 within $2 s; see $DIR/logs/" >&2; return 1
}

mkdir -p "$DIR/logs"
# MLflow delivers registry webhooks only over https to public addresses unless told otherwise; this
# server and `vigil serve` both live on 127.0.0.1. Webhook secrets are stored encrypted under
# MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY: without one each server worker invents its own key and cannot read
# the secrets another worker stored, so the demo keeps one key (0600) next to mlflow.db.
if [ ! -f "$DIR/mlflow-webhook.key" ]; then
  (umask 077; "$BIN/python" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())' \
    > "$DIR/mlflow-webhook.key")
fi
MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY="$(cat "$DIR/mlflow-webhook.key")" \
MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true \
"$BIN/mlflow" server --host "$HOST" --port "$MLFLOW_PORT" \
  --backend-store-uri "sqlite:///$DIR/mlflow.db" --default-artifact-root "$DIR/mlartifacts" \
  >"$DIR/logs/mlflow.log" 2>&1 &
pids+=($!)
wait_http "http://$HOST:$MLFLOW_PORT/health" 120 "MLflow"
export VIGIL_MLFLOW_URI="http://$HOST:$MLFLOW_PORT"
export VIGIL_MLFLOW_UI_URL="http://$HOST:$MLFLOW_PORT"

if [ -f scripts/labelstudio.sh ]; then
  LS_ENV="$DIR/labelstudio.env"
  bash scripts/labelstudio.sh start --port "$LS_PORT" --data-dir "$DIR/labelstudio" --env-file "$LS_ENV" \
    >"$DIR/logs/labelstudio.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 600); do [ -f "$LS_ENV" ] && break; sleep 1; done
  # shellcheck disable=SC1090
  [ -f "$LS_ENV" ] && source "$LS_ENV" && export VIGIL_LABEL_STUDIO_URL VIGIL_LABEL_STUDIO_TOKEN
fi

export VIGIL_SERVE_PORT="$SERVE_PORT"
"$BIN/vigil" serve --host "$HOST" >"$DIR/logs/serve.log" 2>&1 &
pids+=($!)
wait_http "http://$HOST:$SERVE_PORT/healthz" 120 "vigil serve"

"$BIN/streamlit" run dashboard/app.py --server.address "$HOST" --server.port "$APP_PORT" \
  >"$DIR/logs/app.log" 2>&1 &
pids+=($!)
wait_http "http://$HOST:$APP_PORT/_stcore/health" 120 "The Vigil app"

cat <<MSG

  Vigil is running (Ctrl-C stops everything):
    App            http://$HOST:$APP_PORT
    MLflow UI      http://$HOST:$MLFLOW_PORT
    Label Studio   ${VIGIL_LABEL_STUDIO_URL:-not started}  ${LS_SIGNIN:-}
    vigil serve    http://$HOST:$SERVE_PORT/healthz  (schedules, webhooks, /metrics)
    Sign-in users  see $DIR/demo-users.txt
    Logs           $DIR/logs/
MSG
wait -n "${pids[@]}"
echo "A service stopped; see $DIR/logs/." >&2
