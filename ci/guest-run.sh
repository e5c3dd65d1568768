#!/bin/bash
# Runs inside the booted, patched kernel (as root): every test of the given
# test binaries on its own, with the kernel log checked after each and a
# kmemleak scan at the end. Writes a summary line "N passed, M failed".
# With KSELFTEST_SRC (a tree's tools/testing/selftests), KSELFTEST_O (its
# build output) and KHEADERS, it runs the real_time_sync kselftest too.
set -u
# /mnt comes read-only from the host: a tmpfs over it holds the test trees.
export TMPDIR=/mnt
mount -t tmpfs -o size=75%,mode=1777 tmpfs "$TMPDIR" || { echo "cannot mount tmpfs"; exit 1; }
mount -t debugfs none /sys/kernel/debug 2>/dev/null
KMEMLEAK=/sys/kernel/debug/kmemleak
# Scans only at the end: the automatic one (60 s after boot) would slow
# whichever test it meets, and the final scans find every leak as well.
[ -w $KMEMLEAK ] && echo clear >$KMEMLEAK && echo scan=off >$KMEMLEAK
# The binaries come from the host over 9p, where one request can wait 100 ms
# and more on a busy host. The tests run copies on the tmpfs, so that their
# page faults and exits (which the signal tests time) never wait for it.
BIN=$TMPDIR/.bin
SRC=$(dirname "$0")/../userland/guest-tests/tests
TARGET=$(dirname "$(dirname "$1")")
mkdir "$BIN" && cp "$TARGET/real-time-sync" "$TARGET/usac-mem" "$TARGET/tamalloc-demo" "$@" "$BIN/" ||
	{ echo "cannot copy the binaries to $BIN"; exit 1; }
export REAL_TIME_SYNC_CLI=$BIN/real-time-sync
export USAC_MEM_BIN_DIR=$BIN
BAD='BUG:|WARNING:|possible recursive locking|possible circular locking|inconsistent lock state|lockdep|KASAN|UBSAN:|kmemleak|scheduling while atomic|Oops|general protection|hung_task|blocked for more than|soft lockup|hard LOCKUP|detected stall|refcount_t'
# The log is read and cleared after each test (counting its lines would
# miss what a full ring buffer pushes out); tests never clear it, they read
# /dev/kmsg from a mark (guest_tests::LogMark).
dmesg -C
passed=0
failed=0
failures=()
matched=0
# RTS_REPEAT=N runs each test N times (scripts/test --repeat).
repeat=${RTS_REPEAT:-1}

kernel_log_clean() {
	local new
	new=$(dmesg -c)
	if grep -Eq "$BAD" <<<"$new"; then
		echo "---- kernel log ----"
		echo "$new"
		return 1
	fi
	return 0
}

# Runs one test with a time limit (`timeout` also gives it a process group
# of its own, which job-control stops need). A test stuck in the kernel (in
# an uninterruptible sleep after an oops, say) survives even SIGKILL: then
# the stacks of the stuck tasks are shown, and the caller stops the run,
# since this kernel is not fit to go on.
limit=${RTS_TEST_LIMIT:-300}
stuck=0
run_test() {
	timeout -k 5 "$limit" "$1" --exact "$2" --test-threads=1 --nocapture >/tmp/test-out 2>&1 &
	local pid=$! watchdog ended
	# A watchdog that sleeps, not a poll: a process started every 100 ms
	# would show in the system-wide totals the memory tests compare with /proc.
	sleep $((limit + 10)) &
	watchdog=$!
	wait -n -p ended $pid $watchdog
	local status=$?
	if [ "$ended" = "$watchdog" ]; then
		stuck=1
		echo "(still there $((limit + 10)) s after its start, SIGKILL included)" >>/tmp/test-out
		for task in /proc/[0-9]*/task/[0-9]*; do
			[ "$(awk '{print $3}' "$task/stat" 2>/dev/null)" = D ] || continue
			echo "---- stuck task ${task##*/} ($(cat "$task/comm"))"
			cat "$task/stack"
		done >>/tmp/test-out
		return 1
	fi
	kill $watchdog
	wait $watchdog 2>/dev/null
	return $status
}

for bin in "$@"; do
	bin=$BIN/$(basename "$bin")
	name=$(basename "${bin%-*}")
	# A binary that cannot list its tests, or lists none, fails: it must
	# never count as zero tests run.
	if ! list=$("$bin" --list --format terse 2>&1); then
		echo "$list" | tail -${RTS_TAIL:-40}
		echo "FAIL $name: --list failed"
		failed=$((failed + 1))
		failures+=("$name --list")
		continue
	fi
	# A filter matches NAME::TEST; a binary none of whose tests it matches
	# is left out.
	tests=$(sed -n 's/: test$//p' <<<"$list" | while read -r t; do
		grep -Eq -- "${RTS_TEST_FILTER:-}" <<<"$name::$t" && echo "$t"; done)
	listed=$(grep -c . <<<"$tests")
	if [ -n "${RTS_TEST_FILTER:-}" ] && [ "$listed" = 0 ]; then
		continue
	fi
	matched=$((matched + listed))
	# What to expect: the #[test] functions of the binary's source.
	expected=$listed
	src=$SRC/$name.rs
	if [ -z "${RTS_TEST_FILTER:-}" ] && [ -f "$src" ]; then
		expected=$(grep -c '^#\[test\]' "$src")
	fi
	if [ "$listed" != "$expected" ] || [ "$listed" = 0 ]; then
		echo "FAIL $name: lists $listed tests, its source has $expected"
		failed=$((failed + 1))
		failures+=("$name (listed $listed of $expected)")
		continue
	fi
	ran=0
	for t in $(for _ in $(seq "$repeat"); do echo "$tests"; done); do
		start=$(date +%s.%N)
		run_test "$bin" "$t"
		rc=$?
		out=$(cat /tmp/test-out)
		secs=$(echo "$(date +%s.%N) - $start" | bc)
		# --exact with a name that matches nothing passes, having run nothing.
		if [ $rc = 0 ] && ! grep -q '^test result: ok\. 1 passed' <<<"$out"; then
			echo "(ran no test)" >>/tmp/test-out
			out=$(cat /tmp/test-out)
			rc=1
		fi
		[ $rc != 0 ] || ran=$((ran + 1))
		if [ $rc = 0 ] && kernel_log_clean; then
			passed=$((passed + 1))
			printf 'PASS %-70s %6.2fs\n' "$name::$t" "$secs"
			grep -o 'METRIC.*' <<<"$out" || true
		else
			# A test killed by its limit leaves its calls running (each in a
			# process group of its own): they must not count against the
			# next tests (a user's 128 calls, a pair that is busy).
			pkill -INT -x real-time-sync && sleep 2
			pkill -KILL -x real-time-sync
			echo "---- kernel log of the test ----"
			dmesg | tail -30
			kernel_log_clean >/dev/null
			failed=$((failed + 1))
			failures+=("$t")
			printf 'FAIL %-70s %6.2fs\n' "$name::$t" "$secs"
			echo "$out" | tail -${RTS_TAIL:-40}
		fi
		[ $stuck = 0 ] || break 2
	done
	if [ $stuck = 0 ] && [ "$ran" != $((expected * repeat)) ]; then
		echo "$name: $ran of $((expected * repeat)) test runs passed"
	fi
done
if [ "$matched" = 0 ]; then
	echo "FAIL no test matches the filter ${RTS_TEST_FILTER:-}"
	failed=$((failed + 1))
fi
# The kselftest, the kernel's way (built on the host into $KSELFTEST_O, so
# that make only runs it here): each of its TAP results counts as a test,
# and it must report every TEST_F of its source.
if [ $stuck = 0 ] && [ -n "${KSELFTEST_SRC:-}" ] && [ -z "${RTS_TEST_FILTER:-}" ] && [ "$repeat" = 1 ]; then
	start=$(date +%s.%N)
	# summary=1: the runner logs the test's own TAP lines to /tmp/NAME (its
	# default, /dev/stdout, does not reach a captured stdout in this guest).
	log=/tmp/real_time_sync_test
	rm -f "$log"
	out=$(cd "$TMPDIR" && timeout -k 5 "$limit" make -s -C "$KSELFTEST_SRC" TARGETS=real_time_sync \
		O="$KSELFTEST_O" KHDR_INCLUDES="-isystem $KHEADERS/include" summary=1 run_tests 2>&1)
	out+=$'\n'$(cat "$log" 2>/dev/null)
	secs=$(echo "$(date +%s.%N) - $start" | bc)
	expected=$(grep -c '^TEST_F(' "$KSELFTEST_SRC/real_time_sync/real_time_sync_test.c")
	# A skipped test is no pass: "# ok N name # SKIP why" counts as a failure.
	ok=$(grep -E '^# ok [0-9]+ ' <<<"$out" | grep -vc '# SKIP')
	not_ok=$(grep -Ec '^# not ok [0-9]+ ' <<<"$out")
	if [ "$ok" = "$expected" ] && [ "$not_ok" = 0 ] && grep -q '^ok 1 selftests: real_time_sync' <<<"$out" &&
		kernel_log_clean; then
		passed=$((passed + ok))
		printf 'PASS %-70s %6.2fs\n' "kselftest real_time_sync: $ok of $expected" "$secs"
	else
		echo "$out" | tail -${RTS_TAIL:-40}
		kernel_log_clean >/dev/null
		passed=$((passed + ok))
		failed=$((failed + expected - ok))
		[ $((expected - ok)) -gt 0 ] || failed=$((failed + 1))
		failures+=("kselftest real_time_sync")
		printf 'FAIL %-70s %6.2fs\n' "kselftest real_time_sync: $ok of $expected passed" "$secs"
	fi
fi
if [ $stuck = 1 ]; then
	echo "FAIL the run stopped: a test is stuck in the kernel"
	echo "guest: $passed passed, $failed failed"
	exit 1
fi

if [ -w $KMEMLEAK ]; then
	# Two scans: an object is reported only once it stayed unreferenced.
	echo scan >$KMEMLEAK; sleep 1; echo scan >$KMEMLEAK
	if [ -s $KMEMLEAK ]; then
		echo "FAIL kmemleak reports leaks:"
		head -60 $KMEMLEAK
		failed=$((failed + 1))
		failures+=("kmemleak")
	else
		echo "PASS kmemleak: no leaks"
		passed=$((passed + 1))
	fi
else
	echo "FAIL kmemleak is not available"
	failed=$((failed + 1))
fi
[ ${#failures[@]} = 0 ] || echo "failed: ${failures[*]}"
echo "guest: $passed passed, $failed failed"
[ $failed = 0 ]
