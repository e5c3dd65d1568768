//! The best a lean one-process user-space mirror can do, for the benchmark
//! only: inotify on A, `std::fs::copy` to a temporary name in B, rename.
//! One direction, one directory level: enough to keep our lead honest.

use inotify::{Inotify, WatchMask};
use std::path::PathBuf;
use std::{env, fs, io};

fn main() -> io::Result<()> {
    let args: Vec<PathBuf> = env::args_os().skip(1).map(PathBuf::from).collect();
    let [a, b] = args.as_slice() else {
        eprintln!("usage: lean-mirror A B");
        std::process::exit(2);
    };
    let mut inotify = Inotify::init()?;
    inotify.watches().add(a, WatchMask::CLOSE_WRITE | WatchMask::MOVED_TO)?;
    // Start equal, as every syncer does.
    for entry in fs::read_dir(a)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            copy(a, b, &entry.file_name())?;
        }
    }
    let mut buffer = vec![0; 64 * 1024];
    loop {
        for event in inotify.read_events_blocking(&mut buffer)? {
            if let Some(name) = event.name {
                if let Err(err) = copy(a, b, name) {
                    eprintln!("lean-mirror: {}: {err}", name.to_string_lossy());
                }
            }
        }
    }
}

fn copy(a: &std::path::Path, b: &std::path::Path, name: &std::ffi::OsStr) -> io::Result<()> {
    let temp = b.join(format!(".lean-tmp-{}", std::process::id()));
    fs::copy(a.join(name), &temp)?;
    fs::rename(&temp, b.join(name))
}
