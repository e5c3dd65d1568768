# Shared settings for the scripts; sourced, not run.
# shellcheck shell=bash
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${REAL_TIME_SYNC_CACHE:-$HOME/.cache/real-time-sync}
KVER=6.12
KSRC_TARBALL=/usr/src/linux-source-$KVER.tar.xz
PRISTINE=$CACHE/pristine/linux-source-$KVER   # untouched Debian source
KSRC=$CACHE/linux-source-$KVER                 # source with our changes applied
KOUT=$CACHE/build                              # out-of-tree build
BZIMAGE=$KOUT/arch/x86/boot/bzImage
KHEADERS=$CACHE/headers                        # make headers_install output
RUST_LIB_SRC=/usr/src/rustc-1.96.0/library
KMAKE=(make -C "$KSRC" O="$KOUT" RUSTC=/usr/bin/rustc
       BINDGEN="$HOME/.cargo/bin/bindgen" RUST_LIB_SRC="$RUST_LIB_SRC")
export PATH="$HOME/.cargo/bin:$HOME/.local/bin:$PATH"
