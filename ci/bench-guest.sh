#!/bin/bash
# Inside the booted kernel: the benchmark on a tmpfs of its own, or with
# --ext4 on an ext4 on a loop device over a sparse image on that tmpfs
# (both sides on it, as a second disk would hold them).
set -eu
OUT=$1
shift
mount -t tmpfs -o size=80% tmpfs /mnt
export TMPDIR=/mnt
if [ "${1:-}" = --ext4 ]; then
	shift
	truncate -s 3G /mnt/ext4.img
	dev=$(losetup -f --show /mnt/ext4.img)
	mkfs.ext4 -q -F "$dev"
	mkdir /mnt/ext4
	mount "$dev" /mnt/ext4
	export TMPDIR=/mnt/ext4
	echo "bench: both sides on $(findmnt -no FSTYPE,OPTIONS /mnt/ext4) over /dev/loop"
fi
echo "guest: $(uname -r), $(nproc) CPUs, $(free -m | awk '/Mem:/ {print $2}') MiB"
"$@" --out "$OUT"
