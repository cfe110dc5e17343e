//! A Kafka-compatible broker of a test's own: tansu (installed by
//! scripts/services.sh), on a free loopback port, its log in SQLite in a
//! directory of the test's, so it can be killed and started again with
//! what it held.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::mosquitto::free_port;

pub struct PrivateKafka {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl PrivateKafka {
    pub fn start() -> PrivateKafka {
        let mut kafka = PrivateKafka {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
        };
        kafka.launch();
        kafka
    }

    /// `host:port`, for `bootstrap.servers`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn launch(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::File::create(self.dir.path().join("tansu.log")).unwrap();
        // tansu opens its SQLite file relative to where it runs.
        let child = Command::new("tansu")
            .current_dir(self.dir.path())
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("tansu is installed (scripts/services.sh)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// kill -9, then a start on the same port and log.
    #[allow(dead_code)]
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// kill -9: the broker is away until `start_again`.
    #[allow(dead_code)]
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Starts it again on its port and log.
    #[allow(dead_code)]
    pub fn start_again(&mut self) {
        self.launch();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateKafka {
    fn drop(&mut self) {
        self.kill();
    }
}
