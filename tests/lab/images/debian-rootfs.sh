#!/usr/bin/env bash
# Recipe: the Debian 12 rootfs every Debian-based lab host derives from (namespace hosts
# use it as the overlay lower dir; the kernel target's disk image is made from a copy).
# usage: debian-rootfs.sh DEST
set -euo pipefail
dest=$1
pkgs=systemd-sysv,udev,dbus,openssh-server,python3,linux-image-amd64,apparmor,nftables,sudo
pkgs=$pkgs,iproute2,kmod,procps,initramfs-tools,zstd,less
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
# mmdebstrap with no mirror argument uses the machine's own apt sources
if command -v mmdebstrap >/dev/null; then
  mmdebstrap --quiet --mode=root --variant=minbase --include="$pkgs" bookworm "$dest"
else
  debootstrap --variant=minbase --include="$pkgs" bookworm "$dest"
fi
# No DNS inside the lab: sudo and sshd must not wait on name lookups
: > "$dest/etc/resolv.conf"
sed -i 's/^#\?UseDNS.*/UseDNS no/' "$dest/etc/ssh/sshd_config"
# Host keys are made per host when the lab starts; the image must not carry shared ones
rm -f "$dest"/etc/ssh/ssh_host_*
rm -rf "$dest"/var/cache/apt/archives/*.deb "$dest"/var/lib/apt/lists/*
