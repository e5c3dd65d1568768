#!/bin/bash
# Inside the booted kernel: the benchmark on a tmpfs of its own.
set -eu
OUT=$1
shift
mount -t tmpfs -o size=80% tmpfs /mnt
export TMPDIR=/mnt
echo "guest: $(uname -r), $(nproc) CPUs, $(free -m | awk '/Mem:/ {print $2}') MiB"
"$@" --out "$OUT"
