#!/usr/bin/env bash
# Set up the (developer-only) environment used by scripts/make_fixtures.py to
# regenerate the golden fixtures in tests/fixtures/ from the real timm MambaOut.
#
# CI never runs this: the fixtures are committed.  Idempotent: rerunning it is
# cheap and only installs what is missing.
#
#   bash scripts/setup_fixture_env.sh
#   PYTHONPATH=/opt/timm /usr/bin/python3 scripts/make_fixtures.py
#
# What it does (Debian 12 / bookworm):
#   * Debian packages: python3-torch (CPU PyTorch 1.13), python3-torchvision, python3-pil
#     (timm's layers import torchvision.ops), python3-yaml, python3-numpy.
#   * timm itself (pure python) installed WITHOUT dependencies into
#     $TIMM_TARGET (default /opt/timm), never into the system site-packages.
#
# Environment overrides: TIMM_VERSION, TIMM_TARGET, PYTHON, PIP.
set -euo pipefail

TIMM_VERSION="${TIMM_VERSION:-1.0.31}"
TIMM_TARGET="${TIMM_TARGET:-/opt/timm}"
PYTHON="${PYTHON:-/usr/bin/python3}"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# --- Debian packages --------------------------------------------------------
need_pkgs=()
for p in python3-torch python3-torchvision python3-pil python3-yaml python3-numpy; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        need_pkgs+=("$p")
    fi
done
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    echo "setup_fixture_env: installing Debian packages: ${need_pkgs[*]}"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${need_pkgs[@]}"
else
    echo "setup_fixture_env: Debian packages already installed"
fi

# --- timm (no deps, private target dir) --------------------------------------
have_timm=""
if [ -d "$TIMM_TARGET/timm" ]; then
    have_timm="$(PYTHONPATH="$TIMM_TARGET" "$PYTHON" -c 'import timm; print(timm.__version__)' 2>/dev/null || true)"
fi
if [ "$have_timm" = "$TIMM_VERSION" ]; then
    echo "setup_fixture_env: timm $TIMM_VERSION already in $TIMM_TARGET"
else
    echo "setup_fixture_env: installing timm==$TIMM_VERSION (no deps) into $TIMM_TARGET (found: '${have_timm:-none}')"
    # Pick a pip: $PIP, else a pip on PATH, else the target interpreter's pip.
    if [ -n "${PIP:-}" ]; then
        pip_cmd=($PIP)
    elif command -v pip >/dev/null 2>&1; then
        pip_cmd=(pip)
    elif command -v pip3 >/dev/null 2>&1; then
        pip_cmd=(pip3)
    else
        pip_cmd=("$PYTHON" -m pip)
    fi
    $SUDO mkdir -p "$TIMM_TARGET"
    # --upgrade replaces an older/newer copy already in the target dir.
    $SUDO "${pip_cmd[@]}" install --no-deps --upgrade --target "$TIMM_TARGET" "timm==$TIMM_VERSION"
fi

# --- sanity check -------------------------------------------------------------
PYTHONPATH="$TIMM_TARGET" "$PYTHON" - <<'EOF'
import torch, timm, numpy
import timm.models.mambaout  # noqa: F401  (the model the fixtures come from)
print(f"setup_fixture_env: OK torch {torch.__version__}, timm {timm.__version__}, numpy {numpy.__version__}")
EOF
