#!/usr/bin/env sh
# Debian packages the project needs to build (llama.cpp, a venv); with --test also those the
# browser test drives (chromium, chromium-driver). Installs only what is missing, and only where
# it can (root, or sudo without a password); otherwise says what to install.
set -eu
need=""
if [ "${1:-}" = "--test" ]; then
  command -v chromium >/dev/null 2>&1 || need="$need chromium"
  command -v chromedriver >/dev/null 2>&1 || need="$need chromium-driver"
fi
command -v cc >/dev/null 2>&1 || need="$need build-essential"
command -v cmake >/dev/null 2>&1 || need="$need cmake"
command -v git >/dev/null 2>&1 || need="$need git"
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need="$need python3-venv"
[ -n "$need" ] || exit 0
if [ "$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else
  echo "Please install:$need   (sudo apt-get install -y$need)" >&2
  [ "${1:-}" = "--test" ] && exit 0  # the browser test then says it was skipped, and why
  exit 1
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $need
