#!/usr/bin/env bash
# The lab's packages (Debian/Ubuntu, as root): servers, clients and attack
# tools.  Package services do not start on install here; the lab starts
# its own copies inside its namespaces.
set -euo pipefail
packages=(iproute2 ethtool iptables tcpdump iputils-ping nginx-light vsftpd openssh-server openssh-client
          inetutils-telnetd openbsd-inetd dnsmasq curl sshpass inetutils-telnet dnsutils expect nmap hping3 hydra)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if (( ${#missing[@]} )); then
    sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    echo "lab: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
