#!/usr/bin/env bash
# Recipe: the kernel target's disk image, kernel and initrd, made from a copy of the
# Debian rootfs. The guest takes its lab address from the kernel command line
# (labnet=DEV:ADDR/PREFIX:GATEWAY), so one image serves any address.
# usage: vm-image.sh ROOTFS OUTDIR AUTHORIZED_KEY_FILE
set -euo pipefail
rootfs=$1 out=$2 pubkey=$3
work=$out/rootfs.tmp
rm -rf "$work"; mkdir -p "$out"
cp -a "$rootfs" "$work"
r=$work
echo kernel-target > "$r/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 kernel-target\n' > "$r/etc/hosts"
echo '/dev/vda / ext4 defaults,errors=remount-ro 0 1' > "$r/etc/fstab"
install -d -m 700 "$r/root/.ssh"
install -m 600 "$pubkey" "$r/root/.ssh/authorized_keys"
# one host key, pinned by the lab's known_hosts
ssh-keygen -q -t ed25519 -N '' -C kernel-target -f "$r/etc/ssh/ssh_host_ed25519_key"
printf 'HostKey /etc/ssh/ssh_host_ed25519_key\n' > "$r/etc/ssh/sshd_config.d/00-lab-hostkey.conf"
cp "$r/etc/ssh/ssh_host_ed25519_key.pub" "$out/hostkey.pub"
cat > "$r/usr/local/sbin/labnet" <<'NET'
#!/bin/sh
# static lab address from the kernel command line: labnet=eth0:192.168.77.50/24:192.168.77.1
ip link set lo up
for arg in $(cat /proc/cmdline); do
  case "$arg" in labnet=*) spec=${arg#labnet=} ;; esac
done
[ -n "${spec:-}" ] || exit 0
IFS=: read -r dev addr gw <<SPEC
$spec
SPEC
ip link set "$dev" up
ip addr add "$addr" dev "$dev"
[ -n "$gw" ] && ip route add default via "$gw"
exit 0
NET
chmod 755 "$r/usr/local/sbin/labnet"
cat > "$r/etc/systemd/system/labnet.service" <<'UNIT'
[Unit]
Description=Lab static network from the kernel command line
DefaultDependencies=no
Before=network-pre.target ssh.service
Wants=network-pre.target
After=systemd-udevd.service
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/labnet
RemainAfterExit=yes
[Install]
WantedBy=multi-user.target
UNIT
chroot "$r" systemctl enable labnet.service >/dev/null 2>&1
# Timers and waits that only slow a TCG guest down
chroot "$r" systemctl disable apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer >/dev/null 2>&1 || true
chroot "$r" systemctl mask systemd-networkd-wait-online.service e2scrub_reap.service >/dev/null 2>&1 || true
# Small initrd: a 36 MB MODULES=most initrd takes long to unpack under TCG
sed -i 's/^MODULES=.*/MODULES=list/' "$r/etc/initramfs-tools/initramfs.conf"
printf 'virtio_pci\nvirtio_blk\nvirtio_net\next4\n' > "$r/etc/initramfs-tools/modules"
chroot "$r" update-initramfs -u -k all >/dev/null 2>&1
cp "$r"/boot/vmlinuz-* "$out/vmlinuz"
cp "$r"/boot/initrd.img-* "$out/initrd.img"
rm -f "$out/disk.raw"
mkfs.ext4 -q -L ewroot -d "$r" "$out/disk.raw" 3G
rm -rf "$work"
