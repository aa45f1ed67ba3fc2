//! The `keyrot` commands that need no AWS: shell completions and the manual page.

use std::process::Command;

fn keyrot(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_keyrot"))
        .args(args)
        .output()
        .expect("keyrot runs");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn completions_cover_every_subcommand_in_each_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = keyrot(&["completions", shell]);
        for subcommand in ["rotate", "onboard", "rollback", "orphans", "audit"] {
            assert!(script.contains(subcommand), "{shell}: {subcommand}");
        }
        assert!(script.contains("--profile"), "{shell}: the global flags");
    }
}

#[test]
fn the_manual_page_is_roff_naming_the_commands() {
    let page = keyrot(&["man"]);
    assert!(page.contains(".TH keyrot 1"), "{page}");
    for subcommand in ["rotate", "stage", "repair"] {
        assert!(page.contains(subcommand), "{subcommand}");
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_keyrot"))
        .args(["completions", "tcsh"])
        .output()
        .expect("keyrot runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tcsh"));
}
