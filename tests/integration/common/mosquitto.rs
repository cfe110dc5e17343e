//! A Mosquitto of our own, with the shipped configuration
//! (`deploy/mosquitto/mosquitto.conf`, persistence on) on a port of our
//! choosing, so a test can restart it and a benchmark can measure it.
//! Shared by the tests and the benchmarks.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct PrivateMosquitto {
    child: Child,
    _dir: Arc<tempfile::TempDir>,
}

impl PrivateMosquitto {
    /// Starts it on 127.0.0.1:`port` with its data in `dir`; `overrides`
    /// replace settings of the shipped file (`("max_queued_bytes", "0")`).
    pub fn start(port: u16, dir: Arc<tempfile::TempDir>, overrides: &[(&str, &str)]) -> Self {
        let shipped = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/mosquitto/mosquitto.conf"
        ))
        .expect("the shipped Mosquitto configuration");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let mut config: String = shipped
            .lines()
            .filter(|line| {
                let key = line.split_whitespace().next().unwrap_or("");
                !overrides.iter().any(|(k, _)| *k == key)
            })
            .map(|line| format!("{line}\n"))
            .collect();
        for (key, value) in overrides {
            config.push_str(&format!("{key} {value}\n"));
        }
        // Started as root, Mosquitto would switch to its own user, which
        // cannot write the private directory.
        let config = config
            .replace(
                "listener 1883",
                &format!("listener {port} 127.0.0.1\nuser root"),
            )
            .replace("/mosquitto/data/", &format!("{}/", data.display()));
        let path = dir.path().join("mosquitto.conf");
        std::fs::write(&path, config).unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is installed (scripts/services.sh installs it)");
        Self { child, _dir: dir }
    }

    /// SIGTERM: Mosquitto saves its sessions and queued messages first.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateMosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
