#!/usr/bin/env bash
# Installs what tern-edge's device-loop tests need, idempotently: Debian's mosquitto MQTT broker (the tests start
# their own on a free loopback port; the system service is not used).
set -euo pipefail
if command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; then
  echo "mosquitto: present"
  exit 0
fi
sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
$sudo_cmd apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends mosquitto >/dev/null
echo "mosquitto: installed"
