//! Reads the numbers of our system calls (`__NR_real_time_sync`,
//! `__NR_tamalloc`, `__NR_get_mem_stats`, `__NR_get_total_mem_stats`) from
//! the patched kernel's exported headers (`make headers_install`), so they
//! can never drift from the kernel's table. Without headers it falls back
//! to the numbers of our table entries (555 to 558) and says so in
//! `REAL_TIME_SYNC_NR_SOURCE`, which the tests check: a fallback compared
//! with itself proves nothing.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

/// Each call's name and the number of its table entry.
const CALLS: [(&str, i64); 4] =
    [("real_time_sync", 555), ("tamalloc", 556), ("get_mem_stats", 557), ("get_total_mem_stats", 558)];

fn headers_dir() -> Option<PathBuf> {
    if let Some(dir) = env::var_os("REAL_TIME_SYNC_HEADERS") {
        return Some(PathBuf::from(dir));
    }
    let cache = env::var_os("REAL_TIME_SYNC_CACHE")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/real-time-sync")))?;
    Some(cache.join("headers"))
}

fn nr_from_headers(include: &Path, call: &str) -> Option<i64> {
    let unistd = include.join("asm/unistd_64.h");
    if !unistd.exists() {
        return None;
    }
    println!("cargo:rerun-if-changed={}", unistd.display());
    let name = format!("__NR_{call}");
    let bindings = bindgen::Builder::default()
        .header(unistd.to_string_lossy())
        .clang_arg(format!("-I{}", include.display()))
        .allowlist_var(&name)
        .generate()
        .ok()?
        .to_string();
    // bindgen emits `pub const __NR_real_time_sync: u32 = 555;`
    let value = bindings.split(name.as_str()).nth(1)?.split('=').nth(1)?;
    value.split(';').next()?.trim().parse().ok()
}

fn main() {
    println!("cargo:rerun-if-env-changed=REAL_TIME_SYNC_HEADERS");
    println!("cargo:rerun-if-env-changed=REAL_TIME_SYNC_CACHE");
    let include = headers_dir().map(|dir| dir.join("include"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut fallbacks = Vec::new();
    for (call, fallback) in CALLS {
        let nr = include.as_deref().and_then(|i| nr_from_headers(i, call)).unwrap_or_else(|| {
            println!("cargo:warning=no patched kernel headers found for {call}: using syscall number {fallback}");
            fallbacks.push(call);
            fallback
        });
        let file = if call == "real_time_sync" { "syscall_nr.rs".to_owned() } else { format!("nr_{call}.rs") };
        fs::write(out.join(file), format!("{nr}\n")).expect("write the syscall number");
    }
    let source = match (fallbacks.is_empty(), &include) {
        (true, Some(dir)) => dir.display().to_string(),
        _ => format!("fallback for {}", fallbacks.join(", ")),
    };
    println!("cargo:rustc-env=REAL_TIME_SYNC_NR_SOURCE={source}");
}
