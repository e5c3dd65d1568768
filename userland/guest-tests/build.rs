//! Builds the C example with the patched kernel's headers, when present, so
//! that `__NR_real_time_sync` comes from `<sys/syscall.h>` as C users get it.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=c/real_time_sync_example.c");
    println!("cargo:rerun-if-changed=c/usac_mem_example.c");
    let headers = env::var_os("REAL_TIME_SYNC_HEADERS")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/real-time-sync/headers")));
    let mut build = cc::Build::new();
    build.file("c/real_time_sync_example.c").file("c/usac_mem_example.c").warnings(true).extra_warnings(true);
    if let Some(include) = headers.map(|h| h.join("include")).filter(|i| i.exists()) {
        build.include(include);
    }
    build.compile("real_time_sync_example");
}
