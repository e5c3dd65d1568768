//! The command line of `real-time-sync`, on the host: options, usage
//! errors and the exit status of a refused call (the host kernel has no
//! system call 555, so every call is refused with ENOSYS).

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_real-time-sync")).args(args).output().expect("run real-time-sync")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_exits_0_and_names_the_exit_codes() {
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    assert!(help.contains("Usage: real-time-sync [OPTIONS] <DIR_A> <DIR_B>"), "{help}");
    assert!(help.contains("--verbose") && help.contains("Exit status"), "{help}");
}

#[test]
fn version_exits_0() {
    let out = run(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout).trim(), format!("real-time-sync {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn usage_errors_exit_2() {
    for args in [&[][..], &["only-one"], &["a", "b", "c"], &["--no-such-option", "a", "b"]] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains("Usage:"), "{args:?}");
    }
}

#[test]
fn double_dash_ends_the_options() {
    // Without `--`, "-a" is an unknown option; after it, a directory name.
    assert_eq!(run(&["-a", "-b"]).status.code(), Some(2));
    let out = run(&["--", "-a", "-b"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
}

#[test]
fn a_refused_call_exits_3_with_the_errnos_meaning() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir(&a).unwrap();
    std::fs::create_dir(&b).unwrap();
    let out = run(&[a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    assert!(
        err.contains("refused at start: this kernel has no real_time_sync(2)") && err.contains("(ENOSYS)"),
        "{err}"
    );
}

#[test]
fn verbose_says_what_the_call_does() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    std::fs::create_dir(&a).unwrap();
    let out = run(&["--verbose", a.to_str().unwrap(), "/"]);
    let err = text(&out.stderr);
    assert!(err.contains("calling real_time_sync(") && err.contains(".real-time-sync-base"), "{err}");
}
