//! The error table of the contract, for each argument, and the proof that a
//! failing call changes nothing on disk.

use guest_tests::{call_errno, call_errno_as_nobody, cstr, snapshot, Scratch};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::{fs, ptr};

/// Calls with `bad` first and second (beside a valid directory) and checks
/// both answer `errno` and leave the scratch tree untouched.
fn both_ways(s: &Scratch, good: &Path, bad: *const libc::c_char, errno: i32) {
    let good = cstr(good);
    let before = snapshot(&s.root);
    assert_eq!(call_errno(bad, good.as_ptr()), errno, "as the first argument");
    assert_eq!(call_errno(good.as_ptr(), bad), errno, "as the second argument");
    assert_eq!(snapshot(&s.root), before, "a failing call changed the tree");
}

fn setup(name: &str) -> (Scratch, std::path::PathBuf) {
    let s = Scratch::new(name);
    let good = s.dir("good");
    s.file("good/keep", b"data");
    (s, good)
}

#[test]
fn syscall_555_exists() {
    // NULL must come back as EFAULT: ENOSYS would mean an unpatched kernel.
    assert_eq!(call_errno(ptr::null(), ptr::null()), libc::EFAULT);
}

#[test]
fn null_pointer_is_efault() {
    let (s, good) = setup("efault-null");
    both_ways(&s, &good, ptr::null(), libc::EFAULT);
}

#[test]
fn unmapped_pointer_is_efault() {
    let (s, good) = setup("efault-unmapped");
    // SAFETY: a fresh PROT_NONE mapping: any access from user space faults.
    let page =
        unsafe { libc::mmap(ptr::null_mut(), 4096, libc::PROT_NONE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) };
    assert_ne!(page, libc::MAP_FAILED);
    both_ways(&s, &good, page as *const libc::c_char, libc::EFAULT);
    // Past the end of the address space user space can reach.
    both_ways(&s, &good, usize::MAX as *const libc::c_char, libc::EFAULT);
}

#[test]
fn path_without_nul_within_path_max_is_enametoolong() {
    let (s, good) = setup("enametoolong");
    let mut long = vec![b'a'; libc::PATH_MAX as usize];
    long.push(0);
    both_ways(&s, &good, long.as_ptr().cast(), libc::ENAMETOOLONG);
}

#[test]
fn component_longer_than_name_max_is_enametoolong() {
    let (s, good) = setup("enametoolong-component");
    let long = cstr(&s.root.join("x".repeat(300)));
    both_ways(&s, &good, long.as_ptr(), libc::ENAMETOOLONG);
}

#[test]
fn empty_path_is_enoent() {
    let (s, good) = setup("enoent-empty");
    both_ways(&s, &good, c"".as_ptr(), libc::ENOENT);
}

#[test]
fn missing_path_is_enoent() {
    let (s, good) = setup("enoent-missing");
    let missing = cstr(&s.root.join("missing"));
    both_ways(&s, &good, missing.as_ptr(), libc::ENOENT);
    let dangling = s.root.join("dangling");
    symlink(s.root.join("nowhere"), &dangling).unwrap();
    both_ways(&s, &good, cstr(&dangling).as_ptr(), libc::ENOENT);
}

#[test]
fn file_is_enotdir() {
    let (s, good) = setup("enotdir");
    let file = s.file("file", b"x");
    both_ways(&s, &good, cstr(&file).as_ptr(), libc::ENOTDIR);
    let link = s.root.join("link-to-file");
    symlink(&file, &link).unwrap();
    both_ways(&s, &good, cstr(&link).as_ptr(), libc::ENOTDIR);
    both_ways(&s, &good, cstr(&file.join("below")).as_ptr(), libc::ENOTDIR);
}

#[test]
fn same_directory_is_einval() {
    let s = Scratch::new("einval-same");
    let a = s.dir("a");
    let link = s.root.join("link-to-a");
    symlink(&a, &link).unwrap();
    let before = snapshot(&s.root);
    for other in [a.clone(), link, a.join("."), s.root.join("a/../a")] {
        assert_eq!(call_errno(cstr(&a).as_ptr(), cstr(&other).as_ptr()), libc::EINVAL, "{other:?}");
        assert_eq!(call_errno(cstr(&other).as_ptr(), cstr(&a).as_ptr()), libc::EINVAL, "{other:?}");
    }
    assert_eq!(snapshot(&s.root), before);
}

#[test]
fn nested_directories_are_einval() {
    let s = Scratch::new("einval-nested");
    let outer = s.dir("outer");
    let inner = s.dir("outer/x/inner");
    let before = snapshot(&s.root);
    assert_eq!(call_errno(cstr(&outer).as_ptr(), cstr(&inner).as_ptr()), libc::EINVAL);
    assert_eq!(call_errno(cstr(&inner).as_ptr(), cstr(&outer).as_ptr()), libc::EINVAL);
    assert_eq!(snapshot(&s.root), before);
}

#[test]
fn relative_paths_resolve_against_the_working_directory() {
    let s = Scratch::new("relative");
    s.dir("a");
    s.dir("a/b");
    let old = std::env::current_dir().unwrap();
    std::env::set_current_dir(&s.root).unwrap();
    let nested = call_errno(c"a".as_ptr(), c"a/b".as_ptr());
    let missing = call_errno(c"a".as_ptr(), c"nope".as_ptr());
    std::env::set_current_dir(old).unwrap();
    assert_eq!(nested, libc::EINVAL);
    assert_eq!(missing, libc::ENOENT);
}

#[test]
fn directory_the_caller_may_not_use_is_eacces() {
    let s = Scratch::new("eacces");
    fs::set_permissions(&s.root, fs::Permissions::from_mode(0o755)).unwrap();
    let open = s.dir("open");
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let private = s.dir("private");
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
    let read_only = s.dir("read-only");
    fs::set_permissions(&read_only, fs::Permissions::from_mode(0o555)).unwrap();
    let unsearchable = s.dir("unsearchable");
    fs::set_permissions(&unsearchable, fs::Permissions::from_mode(0o766)).unwrap();
    let behind = s.dir("private/inner");
    let before = snapshot(&s.root);
    for bad in [&private, &read_only, &unsearchable, &behind] {
        assert_eq!(call_errno_as_nobody(bad, &open), libc::EACCES, "{bad:?} first");
        assert_eq!(call_errno_as_nobody(&open, bad), libc::EACCES, "{bad:?} second");
    }
    assert_eq!(snapshot(&s.root), before);
}

#[test]
fn c_example_reports_errors_like_the_wrapper() {
    extern "C" {
        fn real_time_sync_example(a: *const libc::c_char, b: *const libc::c_char) -> libc::c_int;
    }
    let (s, good) = setup("c-example");
    let good = cstr(&good);
    let missing = cstr(&s.root.join("missing"));
    // SAFETY: valid strings and NULL; the C code only makes the system call.
    unsafe {
        assert_eq!(real_time_sync_example(good.as_ptr(), missing.as_ptr()), libc::ENOENT);
        assert_eq!(real_time_sync_example(ptr::null(), good.as_ptr()), libc::EFAULT);
        assert_eq!(real_time_sync_example(good.as_ptr(), good.as_ptr()), libc::EINVAL);
    }
}

/// The command's exit status tells a refused start (3, with the errno)
/// from a root that vanished while mirroring (1, in trees.rs).
#[test]
fn the_command_exits_3_when_the_call_is_refused() {
    let (s, good) = setup("cli-refused");
    let missing = s.root.join("missing");
    for (other, errno) in [(&good, "(EINVAL)"), (&missing, "(ENOENT)")] {
        let out = std::process::Command::new(guest_tests::cli_path()).arg(&good).arg(other).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{err}");
        assert!(err.contains("refused at start") && err.contains(errno), "{err}");
    }
}

/// `--verbose` says what the call does at its start and how it ended.
#[test]
fn the_command_in_verbose_mode_says_how_the_call_ended() {
    let s = Scratch::new("cli-verbose");
    let (a, b) = (s.dir("a"), s.dir("b"));
    let child = std::process::Command::new(guest_tests::cli_path())
        .arg("--verbose")
        .arg(&a)
        .arg(&b)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let nr = realtimesync::SYS_REAL_TIME_SYNC.to_string();
    let in_call = guest_tests::eventually(guest_tests::ARRIVAL, || {
        fs::read_to_string(format!("/proc/{}/syscall", child.id()))
            .is_ok_and(|s| s.split_whitespace().next() == Some(nr.as_str()))
    });
    assert!(in_call, "not in the call");
    // SAFETY: signalling our own child, not reaped yet.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("calling real_time_sync(") && err.contains("SIGINT ended it"), "{err}");
}
