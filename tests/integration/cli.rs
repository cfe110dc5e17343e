//! The command line as an operator meets it: bad configuration and a taken
//! port are clear errors with the right exit status, and a log written to a
//! file or pipe is plain text.

use crate::common;

use std::process::Command;

fn isobar() -> Command {
    Command::new(env!("CARGO_BIN_EXE_isobar"))
}

#[test]
fn bad_config_exits_64_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("isobar.toml");
    for (toml, key) in [
        ("[mqtt]\nmod = \"external\"\n", "mqtt.mod"),
        ("[web]\nlisten = \"not an address\"\n", "web.listen"),
        ("[persister]\nbatch_size = -1\n", "persister.batch_size"),
        ("[persister]\nbatch_size = 0\n", "persister.batch_size"),
        (
            "[supervision.pipeline]\nstrategy = \"one_for_most\"\n",
            "supervision.pipeline.strategy",
        ),
        (
            "[supervision.stations.backoff]\nfactor = 0.5\n",
            "supervision.stations.backoff.factor",
        ),
        (
            "[alerts]\nwebhook_url = \"ftp://x\"\n",
            "alerts.webhook_url",
        ),
        (
            "[[alerts.thresholds]]\nname = \"x\"\nvariable = \"wind_direction_deg\"\nabove = 1.0\n",
            "alerts.thresholds[0].variable",
        ),
    ] {
        std::fs::write(&path, toml).unwrap();
        let out = isobar()
            .args(["check-config", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{toml}: {stderr}");
        assert!(stderr.contains(key), "{toml}: {stderr}");
    }
}

#[test]
fn bad_environment_override_exits_64() {
    let out = isobar()
        .args(["check-config"])
        .env("ISOBAR__MQTT__MODE", "sideways")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mqtt.mode"));
}

#[test]
fn the_example_config_checks_clean() {
    let out = isobar()
        .args(["check-config", "--config", "config/isobar.example.toml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("batch_size = 500"));
}

#[test]
fn a_taken_broker_port_is_refused_with_the_fixes() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = isobar()
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--mqtt-listen",
            &addr,
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{addr} is already in use")),
        "{stderr}"
    );
    assert!(stderr.contains("mqtt.mode = \"external\""), "{stderr}");
}

/// Colour codes are for a terminal: a log that goes to a pipe (or a file,
/// or a log collector) carries none.
#[test]
fn a_log_to_a_pipe_has_no_colour_codes() {
    let daemon = common::Daemon::start(&[]);
    let logs = daemon.logs();
    assert!(
        logs.iter().any(|l| l.contains("isobar running")),
        "{logs:#?}"
    );
    assert!(logs.iter().all(|l| !l.contains('\u{1b}')), "{logs:#?}");
}
