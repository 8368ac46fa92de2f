//! What an operator installs: the systemd unit in `deploy/` is valid for systemd
//! (`systemd-analyze verify`, with its binary pointed at the one just built) and keeps its
//! hardening.

use std::process::Command;

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let unit = std::fs::read_to_string(root.join("deploy/chorus.service")).unwrap();
    for needed in [
        "User=chorus",
        "StateDirectory=chorus",
        "ProtectSystem=strict",
        "NoNewPrivileges=true",
        "Restart=on-failure",
        "ProtectHome=true",
        "CapabilityBoundingSet=\n",
    ] {
        assert!(unit.contains(needed), "the unit lacks {needed:?}");
    }
    let analyze = "/usr/bin/systemd-analyze";
    assert!(
        std::path::Path::new(analyze).exists(),
        "{analyze} is missing: this test needs systemd's tools (apt-get install systemd; \
         .ci/run installs it)"
    );
    // Verified as installed, but with ExecStart at the binary just built (systemd checks
    // that it exists and is executable).
    let bin = chorus_e2e::chorus_bin();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chorus.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/chorus", bin.to_str().unwrap()),
    )
    .unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    // Warnings go to stderr with a zero exit; none is expected of this unit.
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("chorus.service"))
        .collect();
    assert!(
        warnings.is_empty(),
        "systemd-analyze verify warned: {stderr}"
    );
}
