//! Certificates for TLS tests: a CA made for the run, and a server
//! certificate it signed for `localhost` and 127.0.0.1.

use std::path::Path;

/// Writes `ca.pem`, `ca.key`, `server.pem` and `server.key` into `dir`.
pub fn make_certificates(dir: &Path) {
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let openssl = |args: &[&str]| super::run_tool("openssl", args);
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=isobar test CA",
        "-keyout",
        &path("ca.key"),
        "-out",
        &path("ca.pem"),
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        &path("server.key"),
        "-out",
        &path("server.csr"),
    ]);
    std::fs::write(
        path("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &path("server.csr"),
        "-CA",
        &path("ca.pem"),
        "-CAkey",
        &path("ca.key"),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        &path("san.ext"),
        "-out",
        &path("server.pem"),
    ]);
}

/// A PostgreSQL server of the test's own that takes only TLS connections
/// (`hostssl`, plain ones rejected), with the certificate of
/// [`make_certificates`] in `certs`. Run as the `postgres` user, as the
/// server refuses root.
pub struct TlsPostgres {
    pub port: u16,
    data: std::path::PathBuf,
    bin: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl TlsPostgres {
    pub fn start(certs: &Path) -> TlsPostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's server binaries are installed")
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .find(|b| b.join("initdb").exists())
            .expect("initdb is installed");
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let port = super::mosquitto::free_port();
        let as_postgres = |program: &Path, args: &[&str]| {
            let out = std::process::Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(program)
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{} {args:?}: {}{}",
                program.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        super::run_tool(
            "chown",
            &["postgres:postgres", dir.path().to_str().unwrap()],
        );
        as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
        );
        for name in ["server.pem", "server.key"] {
            std::fs::copy(certs.join(name), data.join(name)).unwrap();
        }
        let key = data.join("server.key");
        super::run_tool(
            "chown",
            &[
                "postgres:postgres",
                data.join("server.pem").to_str().unwrap(),
                key.to_str().unwrap(),
            ],
        );
        super::run_tool("chmod", &["600", key.to_str().unwrap()]);
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        use std::io::Write;
        write!(
            conf,
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             ssl = on\nssl_cert_file = 'server.pem'\nssl_key_file = 'server.key'\nfsync = off\n",
            dir.path().display()
        )
        .unwrap();
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
        let log = dir.path().join("log");
        as_postgres(
            &bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        TlsPostgres {
            port,
            data,
            bin,
            _dir: dir,
        }
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
    }
}
