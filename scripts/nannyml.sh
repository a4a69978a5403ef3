#!/usr/bin/env bash
# NannyML for Vigil's cross-check tests and bench/nannyml.py: install it (cached, in its own virtualenv
# outside the repository).
#
#   scripts/nannyml.sh install     # does nothing when it is already there
#   scripts/nannyml.sh python      # prints the virtualenv's python (for VIGIL_NANNYML_PYTHON)
#
# pip finds no version conflict between NannyML 0.13.1 and Vigil's pins, but NannyML brings about 30
# packages Vigil has no use for (LightGBM, XGBoost with NVIDIA NCCL, gcsfs/s3fs and cloud SDKs, a telemetry
# client) and imports statsmodels without declaring it; so it lives in its own virtualenv at
# ${VIGIL_NANNYML_VENV:-$HOME/.cache/vigil/nannyml-venv}, with pandas<3 as NannyML was tested (under pandas 3
# its column-type checks miss string columns). Tests run it there through a subprocess on the same Parquet
# data and compare JSON; they skip with a message naming this script when it is missing.
set -euo pipefail

VENV="${VIGIL_NANNYML_VENV:-$HOME/.cache/vigil/nannyml-venv}"
SPEC='nannyml>=0.13.1,<0.14'
PYTHON="${PYTHON:-python3}"

die() { echo "nannyml.sh: $*" >&2; exit 1; }

installed() {
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as m, sys
import nannyml  # noqa: F401  (its plots import statsmodels, which it does not declare)
sys.exit(0 if m.version("nannyml").startswith("0.13.") and int(m.version("pandas").split(".")[0]) < 3 else 1)
PY
}

cmd_install() {
  if installed; then
    echo "NannyML $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("nannyml"))') is installed in $VENV"
    return 0
  fi
  echo "Installing NannyML ($SPEC) into $VENV (once) ..."
  mkdir -p "$(dirname "$VENV")"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$SPEC" 'pandas<3' statsmodels pyarrow
  installed || die "the install in $VENV did not produce a working nannyml; delete $VENV and retry"
  echo "NannyML installed in $VENV"
}

case "${1:-}" in
  install) cmd_install ;;
  python) echo "$VENV/bin/python" ;;
  *) die "usage: $0 install | python" ;;
esac
