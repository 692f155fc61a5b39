#!/usr/bin/env bash
# Installs what the test suite needs: the Python packages, Debian's chromium for the browser
# test (Playwright drives it; Playwright's own browser download cannot work offline), buildah,
# podman, runc and debootstrap for the container test (no Docker daemon needed), and the offline
# model smollm2, prepared once in QA_CACHE_DIR so the tests fetch nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
pip install -r requirements-dev.txt
missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium"
for tool in buildah podman runc debootstrap; do
  command -v "$tool" > /dev/null || missing="$missing $tool"
done
if [ -n "$missing" ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq $missing
fi
python -m qa_core.smollm2
