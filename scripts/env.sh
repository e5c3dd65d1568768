# Shared settings for the scripts; sourced, not run.
# shellcheck shell=bash
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${REAL_TIME_SYNC_CACHE:-$HOME/.cache/real-time-sync}
KVER=6.12
KSRC_TARBALL=/usr/src/linux-source-$KVER.tar.xz
PRISTINE=$CACHE/pristine/linux-source-$KVER   # untouched Debian source
KSRC=$CACHE/linux-source-$KVER                 # source with our changes applied
# `scripts/test --kasan` sets the flavour: a sanitizer kernel in a build tree of
# its own, made with clang (the kernel takes Rust with KASAN only from clang).
FLAVOUR=${REAL_TIME_SYNC_FLAVOUR:-}
KOUT=$CACHE/build${FLAVOUR:+-$FLAVOUR}          # out-of-tree build
BZIMAGE=$KOUT/arch/x86/boot/bzImage
DEB_DIR=$CACHE/packages                        # scripts/build-deb's packages
# `scripts/test --deb` boots the image taken out of the package.
[ "$FLAVOUR" != deb ] || BZIMAGE=$DEB_DIR/vmlinuz
KHEADERS=$CACHE/headers                        # make headers_install output
# The standard library's source of the installed rustc (rust-web-src): the
# version comes from the compiler, so a Debian point release moves both. On
# a fresh machine there is no rustc until scripts/setup ran: no failure here
# (a failed substitution would end the sourcing script under set -e).
RUST_LIB_SRC=/usr/src/rustc-$({ /usr/bin/rustc --version 2>/dev/null || true; } | cut -d' ' -f2)/library
VENV=$CACHE/venv                               # virtme-ng (scripts/setup)
KMAKE_VARS=(RUSTC=/usr/bin/rustc BINDGEN="$HOME/.cargo/bin/bindgen" RUST_LIB_SRC="$RUST_LIB_SRC")
[ "$FLAVOUR" != kasan ] || KMAKE_VARS+=(LLVM=1)
KMAKE=(make -C "$KSRC" O="$KOUT" "${KMAKE_VARS[@]}")
# rustup's cargo when there is one, else Debian's (cargo-web, /usr/bin/cargo);
# bindgen from cargo install; vng from the venv.
export PATH="$VENV/bin:$HOME/.cargo/bin:$PATH"

# fragment_took FRAGMENT CONFIG: every option of FRAGMENT holds in CONFIG, or
# the tests would run on a kernel other than the one we think we built.
fragment_took() {
	local line bad=0
	while IFS= read -r line; do
		case $line in
		CONFIG_*=n)
			if grep -q "^${line%=n}=" "$2"; then
				echo "config: ${line%=n} is still set" >&2
				bad=1
			fi ;;
		CONFIG_*)
			if ! grep -qxF "$line" "$2"; then
				echo "config: $line did not take" >&2
				bad=1
			fi ;;
		esac
	done <"$1"
	return $bad
}
