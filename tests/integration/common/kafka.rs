//! A Kafka-compatible broker of a test's own: tansu (installed by
//! scripts/services.sh), on a free loopback port, its log in SQLite in a
//! directory of the test's, so it can be killed and started again with
//! what it held.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::mosquitto::free_port;

pub struct PrivateKafka {
    child: Option<Child>,
    /// Where clients connect: tansu itself, or its TLS front.
    pub port: u16,
    /// Where tansu listens, when a TLS front stands before it.
    plain: Option<u16>,
    dir: tempfile::TempDir,
    /// The TLS front's runtime, when there is one.
    front: Option<tokio::runtime::Runtime>,
}

impl PrivateKafka {
    pub fn start() -> PrivateKafka {
        let mut kafka = PrivateKafka {
            child: None,
            port: free_port(),
            plain: None,
            dir: tempfile::tempdir().unwrap(),
            front: None,
        };
        kafka.launch();
        kafka
    }

    /// tansu behind a TLS front on `port` that presents the server
    /// certificate of `tls::make_certificates` in `certs`: tansu
    /// advertises the front, so clients speak TLS to it throughout, as to
    /// MSK's TLS listeners. tansu itself takes plain TCP on another port.
    #[allow(dead_code)]
    pub fn start_behind_tls(certs: &std::path::Path) -> PrivateKafka {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_file_iter(certs.join("server.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(certs.join("server.key")).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let (port, plain) = (free_port(), free_port());
        let front = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        // Bound here, so that it listens before tansu advertises it; made a
        // tokio listener on the front's own runtime.
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        front.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut client) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(mut broker) = tokio::net::TcpStream::connect(("127.0.0.1", plain)).await
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
                });
            }
        });
        let mut kafka = PrivateKafka {
            child: None,
            port,
            plain: Some(plain),
            dir: tempfile::tempdir().unwrap(),
            front: Some(front),
        };
        kafka.launch();
        kafka
    }

    /// The broker's process id, while it runs.
    #[allow(dead_code)]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `host:port`, for `bootstrap.servers`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn launch(&mut self) {
        let listen = self.plain.unwrap_or(self.port);
        let url = format!("tcp://127.0.0.1:{listen}");
        // Behind the front, the name its certificate carries.
        let advertised = match self.plain {
            Some(_) => format!("tcp://localhost:{}", self.port),
            None => url.clone(),
        };
        let log = std::fs::File::create(self.dir.path().join("tansu.log")).unwrap();
        // tansu opens its SQLite file relative to where it runs.
        let child = Command::new("tansu")
            .current_dir(self.dir.path())
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &advertised])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("tansu is installed (scripts/services.sh)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", listen)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {listen}"
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
        if let Some(front) = self.front.take() {
            front.shutdown_background();
        }
    }
}
