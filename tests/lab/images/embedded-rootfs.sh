#!/usr/bin/env bash
# Recipe: a Yocto/OpenWrt-class device. BusyBox (static) for the shell and coreutils,
# BusyBox init as PID 1, python3-minimal, dropbear for SSH. No systemd, no procps
# sysctl, no iproute2, no nft, no dpkg database, no sudo.
# Built by unpacking .debs (no maintainer scripts run), so it stays about 40 MB.
# usage: embedded-rootfs.sh DEST
set -euo pipefail
dest=$1
pyver=3.11
work=$(mktemp -d "${TMPDIR:-/var/tmp}/ew-embedded.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"   # apt-get download drops privileges to _apt
pkgs="busybox-static python3-minimal python${pyver}-minimal libpython${pyver}-minimal libc6 libssl3
      libexpat1 zlib1g dropbear-bin libcrypt1 libtomcrypt1 libtommath1 libgmp10 libpython${pyver}-stdlib"
(cd "$work" && apt-get download $pkgs >/dev/null)
rm -rf "$dest"; mkdir -p "$dest" "$work/stdlib"
for deb in "$work"/*.deb; do
  case $deb in
    */libpython${pyver}-stdlib_*) dpkg-deb -x "$deb" "$work/stdlib" ;;
    *) dpkg-deb -x "$deb" "$dest" ;;
  esac
done
# Debian 12 is merged-/usr but .debs still ship /bin, /lib: fold them into /usr
for d in bin sbin lib lib64; do
  if [ -d "$dest/$d" ] && [ ! -L "$dest/$d" ]; then
    mkdir -p "$dest/usr/$d"; cp -a "$dest/$d/." "$dest/usr/$d/"; rm -rf "${dest:?}/$d"
  fi
  [ -e "$dest/usr/$d" ] && ln -sfn "usr/$d" "$dest/$d"
done
chroot "$dest" /usr/bin/busybox --install -s /usr/bin
ln -sfn busybox "$dest/usr/bin/sh"
ln -sfn ../bin/busybox "$dest/usr/sbin/init"
# Device images ship none of these; the BusyBox applets would make the target look like
# a dpkg system with procps, which is exactly what our modules must not rely on
rm -f "$dest"/usr/bin/{dpkg,dpkg-deb,sysctl,ip,ss,netstat}
rm -rf "$dest"/usr/share/{doc,man,lintian,info}
# python3-minimal is not enough for ansible-core's module wrapper and common modules
# (the same gap as Yocto's split python, ansible#82733): add the measured dozen pieces
src=$work/stdlib/usr/lib/python$pyver
dst=$dest/usr/lib/python$pyver
for m in shutil.py json dataclasses.py shlex.py decimal.py numbers.py multiprocessing queue.py \
         getpass.py concurrent gzip.py _compression.py; do
  cp -a "$src/$m" "$dst/"
done
cp -a "$src"/lib-dynload/_decimal.cpython-*.so "$src"/lib-dynload/_multiprocessing.cpython-*.so "$dst/lib-dynload/"
mkdir -p "$dest"/{etc/dropbear,etc/init.d,root/.ssh,proc,sys,dev,tmp,run,var/run,var/log,home}
chmod 1777 "$dest/tmp"; chmod 700 "$dest/root/.ssh"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$dest/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$dest/etc/group"
printf 'root:*:19000:0:99999:7:::\n' > "$dest/etc/shadow"; chmod 600 "$dest/etc/shadow"
echo /bin/sh > "$dest/etc/shells"
printf 'NAME="Edgewarden lab embedded"\nID=ewembedded\nVERSION_ID=1\nPRETTY_NAME="Edgewarden lab embedded (BusyBox + python3-minimal)"\n' \
  > "$dest/etc/os-release"
# BusyBox-init device: rcS applies /etc/sysctl.conf with the sysctl applet at boot (the path
# the kernel role persists to on such devices), inittab respawns dropbear
cat > "$dest/etc/init.d/rcS" <<'RCS'
#!/bin/sh
[ -f /etc/hostname ] && hostname -F /etc/hostname
[ -f /etc/sysctl.conf ] && busybox sysctl -q -p /etc/sysctl.conf >/dev/null 2>&1
exit 0
RCS
chmod 755 "$dest/etc/init.d/rcS"
cat > "$dest/etc/inittab" <<'TAB'
::sysinit:/etc/init.d/rcS
::respawn:/usr/sbin/dropbear -F -E -s -p 22 -r /etc/dropbear/dropbear_ed25519_host_key
::shutdown:/bin/true
TAB
