#!/usr/bin/env bash
# One-time machine set-up for isthmus on Debian: system packages (as root) and the venv.
# Idempotent; safe to run on every `make test` / `make demo`.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v iptables-restore >/dev/null 2>&1 || need_apt+=(iptables)
{ command -v unshare && command -v setpriv; } >/dev/null 2>&1 || need_apt+=(util-linux)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    need_apt+=(python3-venv)
fi
# `isthmus up --with prometheus` runs Debian's prometheus as a pod (only root runs a mesh).
if [ "$(id -u)" -eq 0 ] && ! command -v prometheus >/dev/null 2>&1; then
    need_apt+=(prometheus)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "isthmus setup: need root to install: ${need_apt[*]}" >&2
        exit 1
    fi
    echo "isthmus setup: apt-get install ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # No package may start a system service: prometheus's would listen on the host (isthmus
    # runs it as a pod). Every start is denied while installing (policy-rc.d, which
    # invoke-rc.d and deb-systemd-invoke obey), unless the machine already has a policy;
    # no recommends (prometheus recommends the node exporter, another service).
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        trap 'rm -f "$policy"' EXIT
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
    fi
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
    if [[ " ${need_apt[*]} " == *" prometheus "* ]]; then
        # Stopped should a machine's own policy have let it start, and not started at boot.
        update-rc.d prometheus disable >/dev/null 2>&1 || true
        if [ -d /run/systemd/system ]; then
            systemctl disable --now prometheus.service >/dev/null 2>&1 || true
        elif [ -x /etc/init.d/prometheus ]; then
            /etc/init.d/prometheus stop >/dev/null 2>&1 || true
        fi
    fi
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
stamp=.venv/.isthmus-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/pip install -q --upgrade pip >/dev/null
    .venv/bin/pip install -q -e '.[dev]'
    touch "$stamp"
fi
