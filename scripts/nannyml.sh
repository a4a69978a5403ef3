#!/usr/bin/env bash
# NannyML for Vigil's cross-check tests and bench/nannyml.py: install it (cached, in its own virtualenv
# outside the repository).
#
#   scripts/nannyml.sh install     # does nothing when it is already there
#   scripts/nannyml.sh python      # prints the virtualenv's python (for VIGIL_NANNYML_PYTHON)
#
# NannyML 0.13 pins pandas and scikit-learn ranges and pulls in its own plotting and telemetry stack,
# which conflict with Vigil's (Evidently 0.7 needs pandas<3), hence its own virtualenv at
# ${VIGIL_NANNYML_VENV:-$HOME/.cache/vigil/nannyml-venv}. Tests run it there through a subprocess on the
# same Parquet data and compare JSON; they skip with a message naming this script when it is missing.
set -euo pipefail

VENV="${VIGIL_NANNYML_VENV:-$HOME/.cache/vigil/nannyml-venv}"
SPEC='nannyml>=0.13.1,<0.14'
PYTHON="${PYTHON:-python3}"

die() { echo "nannyml.sh: $*" >&2; exit 1; }

installed() {
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as m, sys
import nannyml  # noqa: F401  (its plots import statsmodels, which it does not declare)
sys.exit(0 if m.version("nannyml").startswith("0.13.") else 1)
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
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$SPEC" statsmodels pyarrow
  installed || die "the install in $VENV did not produce a working nannyml; delete $VENV and retry"
  echo "NannyML installed in $VENV"
}

case "${1:-}" in
  install) cmd_install ;;
  python) echo "$VENV/bin/python" ;;
  *) die "usage: $0 install | python" ;;
esac
