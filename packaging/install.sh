#!/usr/bin/env bash
# Install AutoPaint Studio on a fresh Debian machine: the system libraries Qt needs, then the
# package with its training and test extras into ./.venv. Safe to run again.
#
# Usage: bash packaging/install.sh        (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."

QT_SYSTEM_PACKAGES="xvfb libxcb-icccm4 libxcb-keysyms1 libgl1 libegl1 libxkbcommon-x11-0 libxcb-cursor0 libdbus-1-3"

if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
    echo "== system packages for Qt: $QT_SYSTEM_PACKAGES"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $QT_SYSTEM_PACKAGES >/dev/null
else
    echo "apt-get not found: install these system packages yourself: $QT_SYSTEM_PACKAGES" >&2
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "== virtual environment .venv ($($PYTHON --version))"
    "$PYTHON" -m venv .venv
fi
echo "== python packages (torch==2.13.0 is the local CPU wheel)"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[train,dev]"
echo "== installed: $(.venv/bin/python -c 'import autopaint_app; print("autopaint_app", autopaint_app.__version__)')"
