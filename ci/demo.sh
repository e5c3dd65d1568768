#!/bin/bash
# Inside the booted kernel: mirror two directories for a moment and show it.
set -u
CLI=$1
D=/mnt
mount -t tmpfs tmpfs "$D"
mkdir "$D/a" "$D/b"
echo "hello from a" >"$D/a/greeting"
echo "$ uname -r; real-time-sync $D/a $D/b &"
uname -r
"$CLI" "$D/a" "$D/b" &
pid=$!
until [ "$(cut -d' ' -f1 /proc/$pid/syscall 2>/dev/null)" = 555 ]; do sleep 0.05; done
echo "hello from b" >"$D/b/reply"
sleep 1
echo "$ ls -l $D/a $D/b"
ls -l "$D/a" "$D/b"
kill -INT $pid
wait $pid
echo "real-time-sync exited with $?"
