#!/usr/bin/env bash
# Installs everything b2ct and its tests need on a fresh Debian 12 machine (run as root).
# System packages: the union of .ci/packages/*.apt (one list per product area).
set -euo pipefail
cd "$(dirname "$0")"
export DEBIAN_FRONTEND=noninteractive
packages=$(sed -e 's/#.*//' .ci/packages/*.apt | tr -s ' \t' '\n' | sed '/^$/d' | sort -u)
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $packages > /tmp/b2ct-apt.log 2>&1 || {
  tail -n 30 /tmp/b2ct-apt.log
  exit 1
}
python3 -m pip install -q --disable-pip-version-check -e '.[test,check]' 2>&1 | grep -v -e '^WARNING: Running pip as' -e 'is ignored: it is neither' || true
python3 -c 'import b2ct, pykickstart, libvirt, ansible_runner' # fail here, not in the middle of the tests
echo "b2ct set up: $(python3 -m b2ct --version)"
