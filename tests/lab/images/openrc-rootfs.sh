#!/usr/bin/env bash
# Recipe: a Debian 12 rootfs whose services are managed by OpenRC (Debian's openrc 0.45.2
# package) instead of systemd, for the `openrc` lab hosts. Same base as debian-rootfs.sh
# (mmdebstrap minbase, sshd, python3), without the kernel, initramfs and systemd: the host
# shares this machine's kernel like the other namespace hosts, and OpenRC brings up its
# default runlevel before sshd starts (lab-openrc-boot below).
# usage: openrc-rootfs.sh DEST
set -euo pipefail
dest=$1
pkgs=openrc,openssh-server,python3,sudo,iproute2,procps,less
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
rm -f "$dest"/etc/ssh/ssh_host_*
# The host is a set of namespaces on a shared kernel, like a container: OpenRC's
# "docker" keyword skips the services that would mount /proc, /sys, /dev or set the clock.
# sshd is started by the boot script, not as an OpenRC service (the lab reaches the host
# the same way whatever OpenRC does).
sed -i 's/^#\?rc_sys=.*/rc_sys="docker"/' "$dest/etc/rc.conf"
grep -q '^rc_sys="docker"' "$dest/etc/rc.conf" || echo 'rc_sys="docker"' >> "$dest/etc/rc.conf"
# hwclock.sh and procps would set this machine's clock and kernel sysctls (read-only here).
rm -f "$dest/etc/runlevels/default/ssh" "$dest/etc/runlevels/sysinit/hwclock.sh" "$dest/etc/runlevels/sysinit/procps"
mkdir -p "$dest/usr/local/sbin"
cat > "$dest/usr/local/sbin/lab-openrc-boot" <<'BOOT'
#!/bin/sh
# PID 1 is tini (the lab's reaper); OpenRC brings up its runlevels as it does at boot,
# then sshd runs in the foreground as the host's main process.
openrc sysinit
openrc boot
openrc default
exec /usr/sbin/sshd -D -e
BOOT
chmod 755 "$dest/usr/local/sbin/lab-openrc-boot"
rm -rf "$dest"/var/cache/apt/archives/*.deb "$dest"/var/lib/apt/lists/*
