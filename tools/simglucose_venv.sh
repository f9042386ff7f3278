#!/usr/bin/env bash
# Create (or repair) .venv-simglucose in the repo root with simglucose 0.2.11,
# the reference simulator our UVA/Padova engine is tested against.
# Idempotent: a venv that already imports the pinned simglucose is left alone.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-simglucose"
PY="$VENV/bin/python"

# simglucose imports pkg_resources (removed from setuptools 81) and predates numpy 2.
PKGS=(simglucose==0.2.11 "numpy<2" "setuptools<81")

healthy() {
    "$PY" - <<'PY' >/dev/null 2>&1
from importlib.metadata import version

import pkg_resources  # noqa: F401  (simglucose needs it at import time)
import simglucose.simulation.env  # noqa: F401

assert version("simglucose") == "0.2.11"
assert int(version("numpy").split(".")[0]) < 2
PY
}

if [[ -x "$PY" ]] && healthy; then
    echo "$VENV"
    exit 0
fi

if command -v python3.11 >/dev/null 2>&1; then
    BASE=python3.11
else
    BASE=python3
fi

rm -rf "$VENV"
"$BASE" -m venv "$VENV"
"$PY" -m pip install -qq --upgrade pip
"$PY" -m pip install -qq "${PKGS[@]}"

if ! healthy; then
    echo "simglucose venv at $VENV is not usable after install" >&2
    exit 1
fi
echo "$VENV"
