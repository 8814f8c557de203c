#!/usr/bin/env bash
# The system tools the tests drive, in one list shared by .ci/run and tests/run_all.sh.
#   bash .ci/system_tools.sh install   apt-get installs every package (as root; exit 1 if it fails)
#   bash .ci/system_tools.sh missing   prints the commands not on PATH, one a line (exit 0)
#   bash .ci/system_tools.sh hint      one line: what is missing and the command that installs it
# Without CI set, a test whose tool is missing skips with its reason (tests/_tools.ts); under CI
# it fails, so CI must run `install` first.
set -uo pipefail

# command:Debian package. hping3/iptables/iproute2 (ip, ss) for the flood and doctor tests in
# network namespaces, promtool (package prometheus) to check /metrics, redis-server for the Redis
# tests, chromium for the dashboard's browser tests, systemd-analyze to verify the unit in docs/, haproxy
# (with nginx) in front of tallyho for the PROXY protocol tests, etcd and etcdctl for the etcd
# number source tests, openssl to make the certificates of the etcd client-certificate tests,
# cc (gcc) that builds the comparison's native client (bench/native_client), and the anchors the
# comparison harness measures against (nginx, gevent; nginx's njs and libssl-dev for
# bench/compare/tls_proxy.ts: its C client and nginx's per-line TLS reply). The release stage
# (tests/release_*_test.ts): dpkg-deb builds the .deb, debootstrap makes a clean Debian and
# systemd-nspawn (systemd-container) boots it, qemu-aarch64-static (qemu-user-static) runs the
# arm64 binary with the aarch64 C library of libc6-arm64-cross (registered with binfmt_misc by
# the test itself, so binfmt-support is not needed).
TOOLS=(
  "redis-server:redis-server"
  "chromium:chromium"
  "promtool:prometheus"
  "hping3:hping3"
  "iptables:iptables"
  "ip:iproute2"
  "ss:iproute2"
  "nc:netcat-openbsd"
  "systemd-analyze:systemd"
  "nginx:nginx"
  "haproxy:haproxy"
  "etcd:etcd-server"
  "etcdctl:etcd-client"
  "openssl:openssl"
  "cc:gcc"
  "dpkg-deb:dpkg"
  "debootstrap:debootstrap"
  "systemd-nspawn:systemd-container"
  "qemu-aarch64-static:qemu-user-static"
)
# Installed with the tools but not a command of their own.
EXTRA_PACKAGES=(libnginx-mod-stream libnginx-mod-stream-js libssl-dev python3-gevent libfaketime
  libc6-arm64-cross)

on_path() { command -v "$1" >/dev/null 2>&1; }

missing() {
  local entry
  for entry in "${TOOLS[@]}"; do
    on_path "${entry%%:*}" || echo "${entry%%:*}"
  done
}

install() {
  if ! on_path apt-get; then
    echo "no apt-get here: install these packages with your package manager: $(packages)" >&2
    return 1
  fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if on_path sudo; then sudo="sudo"; else
      echo "not root and no sudo: run as root: apt-get install $(packages)" >&2
      return 1
    fi
  fi
  # policy-rc.d stops the packages from starting their own services (redis, nginx).
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
  $sudo apt-get update -qq >/dev/null 2>&1 || true
  # shellcheck disable=SC2046
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    $(packages) >/dev/null 2>&1
  local rc=$?
  $sudo rm -f /usr/sbin/policy-rc.d
  [ "$rc" -eq 0 ] || echo "apt-get install failed (exit $rc): $(packages)" >&2
  return "$rc"
}

packages() {
  local entry list=()
  for entry in "${TOOLS[@]}"; do list+=("${entry#*:}"); done
  list+=("${EXTRA_PACKAGES[@]}")
  printf '%s\n' "${list[@]}" | sort -u | tr '\n' ' ' | sed 's/ $//'
}

hint() {
  local tools
  tools=$(missing | tr '\n' ',' | sed 's/,$//; s/,/, /g')
  local notes=()
  [ -n "$tools" ] && notes+=("install ${tools} with 'sudo bash .ci/system_tools.sh install'")
  [ "$(id -u)" -ne 0 ] && notes+=("run as root for the network-namespace tests")
  local joined="" note
  for note in "${notes[@]}"; do joined="${joined:+$joined; }$note"; done
  echo "$joined"
}

case "${1:-}" in
  install) install ;;
  missing) missing ;;
  hint) hint ;;
  packages) packages; echo ;;
  *) echo "usage: bash .ci/system_tools.sh install|missing|hint|packages" >&2; exit 2 ;;
esac
