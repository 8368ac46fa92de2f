//! The binary's help and version (this file also makes `cargo test` build the `chorus`
//! binary that the end-to-end tests in `tests/` run).

use std::process::Command;

#[test]
fn help_lists_the_commands() {
    let out = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for cmd in ["node", "init", "id", "compact"] {
        assert!(text.contains(cmd), "--help lacks {cmd}:\n{text}");
    }
}

#[test]
fn unknown_subcommand_fails_with_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .arg("frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("frobnicate"));
}

#[test]
fn node_help_explains_the_metrics_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(["node", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    // Wrapped at whatever width: compared with single spaces.
    let text = String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for needle in [
        "--metrics <HOST:PORT>",
        "/metrics",
        "no token",
        "Off by default",
    ] {
        assert!(
            text.contains(needle),
            "node --help lacks {needle:?}:\n{text}"
        );
    }
}
