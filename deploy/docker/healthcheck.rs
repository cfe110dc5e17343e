//! The container image's health probe: `GET /health` (or the path given as
//! the one argument, e.g. `/ready`) on the daemon's own web port; exit 0 on a
//! 200 answer and 1 otherwise, within 3 seconds.
//!
//! The runtime image is distroless, with no shell and no curl, so the probe is
//! a program of its own: the standard library only, a few hundred kilobytes,
//! built with `rustc` beside the daemon (see deploy/docker/Dockerfile).
//!
//! It finds the port in `ISOBAR__WEB__LISTEN`, the variable the image sets, so
//! an operator who moves the daemon to another port moves the probe with it.
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(3);
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

fn main() -> ExitCode {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/health".to_owned());
    let listen = std::env::var("ISOBAR__WEB__LISTEN").unwrap_or_else(|_| DEFAULT_LISTEN.to_owned());
    match target(&listen).and_then(|addr| status(addr, &path)) {
        Ok(200) => ExitCode::SUCCESS,
        Ok(code) => {
            eprintln!("healthcheck: GET {path} on {listen}: status {code}");
            ExitCode::FAILURE
        }
        Err(reason) => {
            eprintln!("healthcheck: GET {path} on {listen}: {reason}");
            ExitCode::FAILURE
        }
    }
}

/// The address to dial for the daemon's listen address: one that listens on
/// every interface (`0.0.0.0`, `[::]`) answers on loopback.
fn target(listen: &str) -> Result<SocketAddr, String> {
    let mut addr: SocketAddr = listen
        .parse()
        .map_err(|e| format!("ISOBAR__WEB__LISTEN is not host:port ({e})"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    Ok(addr)
}

/// The HTTP status code of `GET path` at `addr`.
fn status(addr: SocketAddr, path: &str) -> Result<u16, String> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    // The status line is all the probe needs: "HTTP/1.1 200 OK\r\n".
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 64];
    while !head.contains(&b'\n') && head.len() < 1024 {
        match stream.read(&mut buf).map_err(|e| e.to_string())? {
            0 => break,
            n => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or_default();
    line.strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {line:?}"))
}
