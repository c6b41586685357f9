#!/usr/bin/env bash
# Installs the OS packages the tests and the demo run for real (PostgreSQL, mosquitto, the
# Chromium the console tests drive, and npm for the console's chart library). As root it uses
# apt-get; otherwise it says what to install.
set -euo pipefail

need=()
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
if [ "${IOC_SKIP_BROWSER:-}" != "1" ]; then
  command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need+=(chromium)
fi
command -v npm >/dev/null 2>&1 || need+=(npm)  # installs the console's chart library

[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing OS packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian starts a system-wide broker and cluster on install; the project runs its own.
  systemctl disable --now mosquitto >/dev/null 2>&1 || true
else
  echo "setup: missing OS packages: ${need[*]}" >&2
  echo "setup: install them with: sudo apt-get install ${need[*]}" >&2
  exit 1
fi
