# Device state that bad input must not change, as text: same text = same state.
# POSIX sh with BusyBox applets only (no procps, iproute2 or nft needed).
# Files: type, mode, owner and content hash of /etc and every place our roles write.
for d in /etc /var/lib/edgewarden /run/edgewarden /usr/lib/edgewarden /usr/local /var/log/edgewarden \
         /var/spool/cron /srv/edgewarden; do
  [ -e "$d" ] || continue
  find "$d" -xdev -exec stat -c 'meta %n %f %u:%g' {} + 2>/dev/null
  find "$d" -xdev -type f -exec sha256sum {} + 2>/dev/null | sed 's/^/hash /'
  find "$d" -xdev -type l -exec ls -l {} + 2>/dev/null | sed 's/.* \(\/[^ ]*\) -> /link \1 -> /'
done
# Live per-namespace sysctls (kernel.* is read-only here); counters that move on their own are left out.
grep -r . /proc/sys/net 2>/dev/null | grep -v -e nf_conntrack_count -e '/route/' | sed 's/^/sysctl /'
# The ruleset without counters (-s), where nft exists.
if command -v nft >/dev/null 2>&1; then nft -s list ruleset 2>&1 | sed 's/^/nft /'; fi
# Listening sockets (TCP LISTEN, bound UDP) and the names of running programs.
awk 'FNR > 1 && (FILENAME ~ /udp/ || $4 == "0A") { print "listen", FILENAME, $2 }' \
  /proc/net/tcp /proc/net/tcp6 /proc/net/udp /proc/net/udp6 2>/dev/null
# read all names first: the pipeline's own programs would otherwise show up
procs=$(for p in /proc/[0-9]*; do cat "$p/comm" 2>/dev/null; done)
echo "$procs" | grep -v -x -e sh -e cat | sort -u | sed 's/^/proc /'
