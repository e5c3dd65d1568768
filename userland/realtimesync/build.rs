//! Reads `__NR_real_time_sync` from the patched kernel's exported headers
//! (`make headers_install`), so the number can never drift from the kernel's
//! table. Without headers it falls back to 555, the number in our table entry.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

const FALLBACK_NR: i64 = 555;

fn headers_dir() -> Option<PathBuf> {
    if let Some(dir) = env::var_os("REAL_TIME_SYNC_HEADERS") {
        return Some(PathBuf::from(dir));
    }
    let cache = env::var_os("REAL_TIME_SYNC_CACHE")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/real-time-sync")))?;
    Some(cache.join("headers"))
}

fn nr_from_headers(include: &Path) -> Option<i64> {
    let unistd = include.join("asm/unistd_64.h");
    if !unistd.exists() {
        return None;
    }
    println!("cargo:rerun-if-changed={}", unistd.display());
    let bindings = bindgen::Builder::default()
        .header(unistd.to_string_lossy())
        .clang_arg(format!("-I{}", include.display()))
        .allowlist_var("__NR_real_time_sync")
        .generate()
        .ok()?
        .to_string();
    // bindgen emits `pub const __NR_real_time_sync: u32 = 555;`
    let value = bindings.split("__NR_real_time_sync").nth(1)?.split('=').nth(1)?;
    value.split(';').next()?.trim().parse().ok()
}

fn main() {
    println!("cargo:rerun-if-env-changed=REAL_TIME_SYNC_HEADERS");
    println!("cargo:rerun-if-env-changed=REAL_TIME_SYNC_CACHE");
    let found = headers_dir().and_then(|dir| nr_from_headers(&dir.join("include")));
    let nr = found.unwrap_or_else(|| {
        println!("cargo:warning=no patched kernel headers found: using syscall number {FALLBACK_NR}");
        FALLBACK_NR
    });
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out.join("syscall_nr.rs"), format!("{nr}\n")).expect("write syscall_nr.rs");
}
