//! Credentials against the real daemon: uploads need a key or a token that
//! may ingest, reads need one that may read when they are protected, and
//! every refusal is a 401 or 403 with a JSON body.

use crate::common;

use std::time::Duration;

use common::{Daemon, eventually};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;

const INGEST_KEY: &str = "ingest-key-for-tests-0001";
const READ_KEY: &str = "read-key-for-tests-0001";

/// An RSA key pair made for this run with openssl: (private PEM, public
/// key file).
fn rsa_pair(dir: &std::path::Path) -> (Vec<u8>, std::path::PathBuf) {
    let private = dir.join("private.pem");
    let public = dir.join("public.pem");
    let run = |args: &[&str]| common::run_tool("openssl", args);
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        private.to_str().unwrap(),
    ]);
    run(&[
        "pkey",
        "-in",
        private.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    (std::fs::read(&private).unwrap(), public)
}

fn token(alg: Algorithm, key: &EncodingKey, scope: Option<&str>) -> String {
    let mut claims = serde_json::json!({
        "sub": "uploader",
        "exp": chrono::Utc::now().timestamp() + 300,
    });
    if let Some(scope) = scope {
        claims["scope"] = scope.into();
    }
    jsonwebtoken::encode(&Header::new(alg), &claims, key).unwrap()
}

async fn upload(
    daemon: &Daemon,
    station: &str,
    minute: u32,
    auth: Option<(&str, &str)>,
) -> (u16, Value) {
    let body = format!(r#"{{"temperature": 12.5, "timestamp": "2025-01-13T10:{minute:02}:00Z"}}"#);
    let mut request = reqwest::Client::new()
        .post(daemon.url(&format!("/api/v1/ingest/{station}")))
        .header("content-type", "application/json")
        .body(body);
    if let Some((name, value)) = auth {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    if status == 401 {
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
    }
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(daemon: &Daemon, path: &str, auth: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(daemon.url(path));
    if let Some(key) = auth {
        request = request.header("x-api-key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_and_protected_reads_need_the_right_credential() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = rsa_pair(dir.path());
    let keys = dir.path().join("api-keys");
    std::fs::write(&keys, format!("# uploaders\n{INGEST_KEY}\n")).unwrap();
    let daemon = Daemon::start_with_env(
        &[],
        &[
            ("ISOBAR__WEB__AUTH__API_KEYS_FILE", keys.to_str().unwrap()),
            ("ISOBAR__WEB__AUTH__READ_KEYS", &format!("[\"{READ_KEY}\"]")),
            (
                "ISOBAR__WEB__AUTH__JWT_PUBLIC_KEY_FILE",
                public.to_str().unwrap(),
            ),
            ("ISOBAR__WEB__AUTH__PROTECT_READS", "true"),
        ],
    );
    let rsa = EncodingKey::from_rsa_pem(&private).unwrap();

    // 401: nothing, an unknown key, an unsigned token, a token signed
    // with another algorithm than the one configured.
    let (status, body) = upload(&daemon, "WS950", 0, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );
    assert_eq!(
        upload(
            &daemon,
            "WS950",
            0,
            Some(("x-api-key", "not-a-known-key-at-all"))
        )
        .await
        .0,
        401
    );
    use base64::Engine;
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let unsigned = format!(
        "{}.{}.",
        b64(serde_json::json!({"alg": "none", "typ": "JWT"})),
        b64(serde_json::json!({"sub": "x", "exp": chrono::Utc::now().timestamp() + 300}))
    );
    let (status, body) = upload(
        &daemon,
        "WS950",
        0,
        Some(("authorization", &format!("Bearer {unsigned}"))),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    let hs = EncodingKey::from_secret(b"any secret an attacker might choose to sign with").unwrap();
    let forged = token(Algorithm::HS256, &hs, None);
    assert_eq!(
        upload(
            &daemon,
            "WS950",
            0,
            Some(("authorization", &format!("Bearer {forged}")))
        )
        .await
        .0,
        401
    );

    // 403: a credential that may only read.
    let (status, body) = upload(&daemon, "WS950", 0, Some(("x-api-key", READ_KEY))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let reader = token(Algorithm::RS256, &rsa, Some("read"));
    assert_eq!(
        upload(
            &daemon,
            "WS950",
            0,
            Some(("authorization", &format!("Bearer {reader}")))
        )
        .await
        .0,
        403
    );

    // An upload's refusal speaks of ingesting, never of reads, even with
    // reads protected; a read key in the query is refused as one (403).
    let (status, body) = upload(&daemon, "WS950", 0, None).await;
    let message = body["message"].as_str().unwrap();
    assert!(
        status == 401 && message.starts_with("ingest needs"),
        "{body}"
    );
    let response = reqwest::Client::new()
        .post(daemon.url(&format!("/api/v1/ingest/WS950?api_key={READ_KEY}")))
        .body(r#"{"temperature": 1.0, "timestamp": "2025-01-13T10:00:00Z"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    // A credential that is not text is no credential: 401, in JSON.
    let response = reqwest::Client::new()
        .post(daemon.url("/api/v1/ingest/WS950"))
        .header(
            "authorization",
            reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
        )
        .body(r#"{"temperature": 1.0, "timestamp": "2025-01-13T10:00:00Z"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized", "{body}");
    // The scheme's name in any case.
    assert_eq!(
        upload(
            &daemon,
            "WS950",
            0,
            Some((
                "authorization",
                &format!("BEARER {}", token(Algorithm::RS256, &rsa, Some("read")))
            ))
        )
        .await
        .0,
        403
    );

    // Accepted: the ingest key, and an RS256 token that may ingest.
    assert_eq!(
        upload(&daemon, "WS950", 1, Some(("x-api-key", INGEST_KEY)))
            .await
            .0,
        200
    );
    let uploader = token(Algorithm::RS256, &rsa, Some("ingest"));
    assert_eq!(
        upload(
            &daemon,
            "WS950",
            2,
            Some(("authorization", &format!("Bearer {uploader}")))
        )
        .await
        .0,
        200
    );
    // A Weather Underground station sends the key as its password.
    let wu = |password: &str| {
        daemon.url(&format!(
            "/weatherstation/updateweatherstation.php?ID=WS951&PASSWORD={password}&dateutc=2025-01-13+10%3A03%3A00&tempf=55.4&action=updateraw"
        ))
    };
    assert_eq!(
        reqwest::get(wu("wrong-password-here"))
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    let ok = reqwest::get(wu(INGEST_KEY)).await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.text().await.unwrap(), "success\n");

    // Reads: 401 without a credential, 200 with a read key or a read token.
    assert_eq!(get(&daemon, "/api/v1/stations", None).await.0, 401);
    let readings =
        "/api/v1/stations/WS950/readings?from=2025-01-13T00:00:00Z&to=2025-01-14T00:00:00Z";
    let (status, body) = eventually(Duration::from_secs(10), "two readings", || async {
        let (status, body) = get(&daemon, readings, Some(READ_KEY)).await;
        (body["readings"].as_array().map(Vec::len) == Some(2)).then_some((status, body))
    })
    .await;
    assert_eq!(status, 200, "{body}");
    let response = reqwest::Client::new()
        .get(daemon.url("/api/v1/alerts"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    // Probes, the document and the dashboard stay open.
    assert_eq!(get(&daemon, "/health", None).await.0, 200);
    assert_eq!(get(&daemon, "/api/v1/openapi.json", None).await.0, 200);

    // No key, token or secret reaches the logs.
    let logs = daemon.logs().join("\n");
    for secret in [INGEST_KEY, READ_KEY, &uploader, &reader] {
        assert!(!logs.contains(secret), "a credential was logged");
    }
    assert_eq!(daemon.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_credentials_configured_uploads_are_open_and_the_daemon_says_so() {
    let daemon = Daemon::start(&[]);
    assert_eq!(upload(&daemon, "WS960", 0, None).await.0, 200);
    assert!(
        daemon
            .logs()
            .iter()
            .any(|l| l.contains("HTTP uploads are open")),
        "{:#?}",
        daemon.logs()
    );
    assert_eq!(daemon.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_past_its_rate_gets_429_and_the_probes_still_answer() {
    let daemon = Daemon::start_with_env(
        &[],
        &[
            ("ISOBAR__WEB__RATE_LIMIT__PER_SECOND", "1"),
            ("ISOBAR__WEB__RATE_LIMIT__BURST", "5"),
        ],
    );
    let mut statuses = Vec::new();
    let mut refused = None;
    for _ in 0..8 {
        let response = reqwest::get(daemon.url("/api/v1/stations")).await.unwrap();
        statuses.push(response.status().as_u16());
        if response.status().as_u16() == 429 && refused.is_none() {
            let retry: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            refused = Some((retry, response.json::<Value>().await.unwrap()));
        }
    }
    // Startup's readiness probe used none of the budget: probes are exempt.
    assert!(statuses[..4].iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    let (retry, body) = refused.unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(body["error"], "too_many_requests", "{body}");
    for probe in ["/health", "/ready", "/metrics"] {
        let status = reqwest::get(daemon.url(probe))
            .await
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(status, 200, "{probe}");
    }
    let metrics = daemon.metrics().await;
    assert!(
        metrics.contains("isobar_http_rate_limited_total"),
        "{metrics}"
    );
    assert_eq!(daemon.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_websocket_refuses_pages_from_other_origins() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let daemon = Daemon::start_with_env(
        &[],
        &[(
            "ISOBAR__WEB__ALLOWED_ORIGINS",
            "[\"https://wx.example.net\"]",
        )],
    );
    let open = |origin: Option<String>| {
        let url = format!("ws://{}/api/v1/live", daemon.web);
        async move {
            let mut request = url.into_client_request().unwrap();
            if let Some(origin) = origin {
                request
                    .headers_mut()
                    .insert("origin", origin.parse().unwrap());
            }
            match tokio_tungstenite::connect_async(request).await {
                Ok(_) => 101,
                Err(tokio_tungstenite::tungstenite::Error::Http(r)) => r.status().as_u16(),
                Err(e) => panic!("{e}"),
            }
        }
    };
    assert_eq!(open(Some("https://evil.example.com".into())).await, 403);
    assert_eq!(open(Some("https://wx.example.net".into())).await, 101);
    assert_eq!(
        open(Some(format!("http://{}", daemon.web))).await,
        101,
        "the dashboard's own"
    );
    assert_eq!(open(None).await, 101, "programs send no Origin");
    assert_eq!(daemon.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_listed_origins_may_read_answers_from_the_browser() {
    let daemon = Daemon::start_with_env(
        &[],
        &[("ISOBAR__WEB__CORS_ORIGINS", "[\"https://wx.example.net\"]")],
    );
    let client = reqwest::Client::new();
    let allow = |r: &reqwest::Response| {
        r.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let from = |origin: &'static str, path: &str| {
        client.get(daemon.url(path)).header("origin", origin).send()
    };
    let listed = from("https://wx.example.net", "/api/v1/stations")
        .await
        .unwrap();
    assert_eq!(listed.status().as_u16(), 200);
    assert_eq!(allow(&listed).as_deref(), Some("https://wx.example.net"));
    // An error is readable by the listed page too.
    let missing = from("https://wx.example.net", "/api/v1/stations/NOPE/latest")
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    assert_eq!(allow(&missing).as_deref(), Some("https://wx.example.net"));
    // Another origin gets the answer without the header: its page cannot
    // read it.
    let other = from("https://evil.example.com", "/api/v1/stations")
        .await
        .unwrap();
    assert_eq!(allow(&other), None);

    // Preflights: 204 with what may be sent for the listed origin, 403 for
    // another.
    let preflight = |origin: &'static str| {
        client
            .request(reqwest::Method::OPTIONS, daemon.url("/api/v1/ingest/WS990"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let ok = preflight("https://wx.example.net").await.unwrap();
    assert_eq!(ok.status().as_u16(), 204);
    assert_eq!(allow(&ok).as_deref(), Some("https://wx.example.net"));
    let methods = ok.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let refused = preflight("https://evil.example.com").await.unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "forbidden_origin", "{body}");
    assert_eq!(daemon.terminate(), Some(0));
}

/// What a careless or hostile client sends gets a clear answer, and cannot
/// reach the logs or the store as it was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_requests_get_clear_answers_and_leave_no_trace() {
    let daemon = Daemon::start(&[]);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Probes answer HEAD, rather than sending it to the dashboard.
    for probe in ["/health", "/ready", "/metrics"] {
        let response = client.head(daemon.url(probe)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "HEAD {probe}");
    }
    // A header that is not text: reads are open here, so it is ignored.
    let response = client
        .get(daemon.url("/api/v1/stations"))
        .header(
            "authorization",
            reqwest::header::HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    // A Weather Underground upload's api_key is never kept: this one is
    // quarantined (the temperature is not a number) with the key redacted.
    let key = "a-key-that-must-never-be-stored";
    let response = client
        .get(daemon.url(&format!(
            "/weatherstation/updateweatherstation.php?ID=WS970&api_key={key}&dateutc=2025-01-13+10%3A00%3A00&tempf=warm"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let quarantine = eventually(
        Duration::from_secs(10),
        "the quarantined upload",
        || async {
            let (_, body) = daemon.get("/api/v1/quarantine").await;
            body["items"]
                .as_array()?
                .iter()
                .find(|r| r["source"] == "http:wunderground")
                .cloned()
        },
    )
    .await;
    let payload = quarantine["payload"].as_str().unwrap();
    assert!(payload.contains("api_key=redacted"), "{payload}");
    assert!(!payload.contains(key), "{payload}");
    // A query longer than any upload: 413, in JSON.
    let long = "x".repeat(10_000);
    let response = client
        .get(daemon.url(&format!(
            "/weatherstation/updateweatherstation.php?ID=WS970&junk={long}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "payload_too_large", "{body}");
    // Past the HTTP library's limit on a request's target (65,534 bytes),
    // the library refuses it as it reads the request line: an empty 414,
    // and the daemon goes on answering.
    // (No HTTP client builds such a URI: the request is written by hand.)
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let longer = "x".repeat(70_000);
        let mut stream = tokio::net::TcpStream::connect(&daemon.web).await.unwrap();
        let request = format!(
            "GET /weatherstation/updateweatherstation.php?ID=WS970&junk={longer} HTTP/1.1\r\n\
             Host: {}\r\n\r\n",
            daemon.web
        );
        // The server may close before it has read the whole request.
        let _ = stream.write_all(request.as_bytes()).await;
        let mut answer = Vec::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 414"), "{answer}");
    }
    let (status, _) = daemon.get("/health").await;
    assert_eq!(status, 200);

    // A topic that would forge a log line, and a station id 4,000
    // characters long: quarantined, with the reason and the log line short
    // and the control characters escaped.
    let publisher = common::Publisher::connect(&daemon, "odd-topics").await;
    publisher
        .publish(
            "weather/WS1\nFORGED isobar: all is well\u{1b}[2J/observations",
            r#"{"temperature": 1.0}"#,
        )
        .await;
    let long_id = "S".repeat(4_000);
    publisher
        .publish(
            &format!("weather/{long_id}/observations"),
            r#"{"temperature": 1.0}"#,
        )
        .await;
    let reasons = eventually(Duration::from_secs(10), "both quarantined", || async {
        let (_, body) = daemon.get("/api/v1/quarantine").await;
        let reasons: Vec<String> = body["items"]
            .as_array()?
            .iter()
            .filter(|r| r["reason_code"] == "invalid_station_id")
            .map(|r| r["reason"].as_str().unwrap().to_owned())
            .collect();
        (reasons.len() == 2).then_some(reasons)
    })
    .await;
    for reason in &reasons {
        assert!(reason.len() < 300, "{reason}");
        assert!(
            !reason.contains('\n') && !reason.contains('\u{1b}'),
            "{reason}"
        );
    }
    let logs = daemon.logs();
    for line in &logs {
        assert!(!line.starts_with("FORGED"), "a forged log line: {line}");
        assert!(
            !line.contains('\u{1b}'),
            "a control character logged: {line}"
        );
        assert!(line.len() < 1_000, "a log line of {} bytes", line.len());
    }
    assert!(
        logs.iter()
            .any(|l| l.contains("message quarantined") && l.contains("\\nFORGED")),
        "{logs:#?}"
    );
    assert_eq!(daemon.terminate(), Some(0));
}

/// A credential is never kept, whatever format it came in: a Weather
/// Underground query published over MQTT by a station configured for the
/// wrong protocol, a JSON publish and a JSON upload carrying a key in
/// their bodies, cut off or not. Each is quarantined without it. (The
/// upload routes' own forms are covered with the formats.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_any_format_never_reach_the_quarantine() {
    let daemon = Daemon::start(&[]);
    let secret = "s3cr3t-value-0123456789";
    let publisher = common::Publisher::connect(&daemon, "careless").await;
    publisher
        .publish(
            "weather/WS971/observations",
            format!("ID=WS971&PASSWORD={secret}&tempf=70.1&dateutc=now"),
        )
        .await;
    publisher
        .publish(
            "weather/WS972/observations",
            format!(r#"{{"station_id":"WS972","auth":{{"Api_Key":"{secret}"}},"timestamp":"yesterday"}}"#),
        )
        .await;
    publisher
        .publish(
            "weather/WS973/observations",
            format!(r#"{{"station_id":"WS973","token":"{secret}"#),
        )
        .await;
    let response = reqwest::Client::new()
        .post(daemon.url("/api/v1/ingest/WS974"))
        .body(format!(
            r#"{{"passkey": "{secret}", "temperature": "warm"}}"#
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let payloads = eventually(Duration::from_secs(10), "all four quarantined", || async {
        let (_, body) = daemon.get("/api/v1/quarantine").await;
        let items = body["items"].as_array()?.clone();
        (items.len() == 4).then_some(items)
    })
    .await;
    for item in &payloads {
        let payload = item["payload"].as_str().unwrap_or_default();
        assert!(!payload.contains(secret), "kept: {payload}");
        assert!(payload.contains("redacted"), "{payload}");
        // Kept whole, though the redacted value is shorter than the
        // secret it replaced.
        assert_eq!(item["truncated"], false, "{item}");
        assert_eq!(item["payload_bytes"], payload.len(), "{item}");
    }
    assert!(
        daemon.logs().iter().all(|l| !l.contains(secret)),
        "a credential reached the log"
    );
    assert_eq!(daemon.terminate(), Some(0));
}

/// Slow or stalled clients cannot take the server: a connection that
/// does not finish its headers in time is closed, one address holds at
/// most its share of connections, and the probes keep answering others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_cannot_take_the_http_server() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let daemon = Daemon::start_with_env(
        &[],
        &[
            ("ISOBAR__WEB__HEADER_READ_TIMEOUT", "1s"),
            ("ISOBAR__WEB__MAX_CONNECTIONS_PER_CLIENT", "20"),
        ],
    );
    let addr: std::net::SocketAddr = daemon
        .url("")
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    // 100 connections from 127.0.0.1 that send half a request line and
    // stall.
    let mut stalled = Vec::new();
    for _ in 0..100 {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _ = stream.write_all(b"GET /health HTT").await;
        stalled.push(stream);
    }
    // Another address is served at once.
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let response = other.get(daemon.url("/health")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(started.elapsed() < Duration::from_secs(1));
    let metrics = other
        .get(daemon.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let refused = common::metric(&metrics, "isobar_http_connections_refused_total").unwrap();
    assert!(refused >= 80.0, "{refused} refused");
    // The stalled connections are closed once their headers are late.
    let mut closed = 0;
    for stream in &mut stalled {
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_secs(3), stream.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => closed += 1,
            // A 408 answer before the close counts too.
            Ok(Ok(_)) => closed += 1,
            Err(_) => {}
        }
    }
    assert_eq!(closed, 100, "connections still held");
    drop(stalled);
    // And the address that stalled is served again.
    let (status, _) = daemon.get("/health").await;
    assert_eq!(status, 200);
    assert_eq!(daemon.terminate(), Some(0));
}

/// The station ids of the quarantined messages with reason `code`, once
/// there are `n`.
async fn quarantined(daemon: &Daemon, code: &str, n: usize) -> Vec<String> {
    eventually(Duration::from_secs(10), code, || async {
        let (_, body) = daemon.get("/api/v1/quarantine").await;
        let ids: Vec<String> = body["items"]
            .as_array()?
            .iter()
            .filter(|r| r["reason_code"] == code)
            .map(|r| r["station_id"].as_str().unwrap().to_owned())
            .collect();
        (ids.len() == n).then_some(ids)
    })
    .await
}

/// The stations the daemon lists, sorted, once there are `n`.
async fn stations(daemon: &Daemon, n: usize) -> Vec<String> {
    eventually(Duration::from_secs(10), "the admitted stations", || async {
        let (_, body) = daemon.get("/api/v1/stations").await;
        let mut ids: Vec<String> = body["stations"]
            .as_array()?
            .iter()
            .map(|s| s["station_id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        (ids.len() == n).then_some(ids)
    })
    .await
}

/// Anyone who can publish cannot grow the network without bound: past
/// `admission.max_stations`, or outside `[stations.<id>]` when only
/// registered stations are admitted, a new station's readings are
/// quarantined with the reason, and admitted stations go on as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stations_past_the_cap_or_not_registered_are_quarantined() {
    let daemon = Daemon::start_with_env(&[], &[("ISOBAR__ADMISSION__MAX_STATIONS", "3")]);
    let publisher = common::Publisher::connect(&daemon, "flood").await;
    for i in 0..6 {
        publisher
            .reading(&format!("WS98{i}"), "2025-01-13T10:00:00Z", 10.0)
            .await;
    }
    // An admitted station is still taken after the cap is reached.
    publisher
        .reading("WS980", "2025-01-13T10:01:00Z", 10.5)
        .await;
    assert_eq!(stations(&daemon, 3).await, ["WS980", "WS981", "WS982"]);
    let mut refused = quarantined(&daemon, "too_many_stations", 3).await;
    refused.sort();
    assert_eq!(refused, ["WS983", "WS984", "WS985"]);
    let (_, body) = daemon
        .get("/api/v1/stations/WS980/readings?from=2025-01-13T00:00:00Z&to=2025-01-14T00:00:00Z")
        .await;
    assert_eq!(body["readings"].as_array().unwrap().len(), 2);
    let refused = common::metric(&daemon.metrics().await, "isobar_stations_refused_total");
    assert_eq!(refused, Some(3.0));
    // The operator is told once that the network is full.
    let told = daemon
        .logs()
        .iter()
        .filter(|l| l.contains("admission.max_stations reached"))
        .count();
    assert_eq!(told, 1);
    drop(publisher);
    assert_eq!(daemon.terminate(), Some(0));

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("isobar.toml");
    std::fs::write(
        &config,
        "[admission]\npolicy = \"registered\"\n\n[stations.WS990]\nname = \"Roof\"\n",
    )
    .unwrap();
    let daemon = Daemon::start(&["--config", config.to_str().unwrap()]);
    let publisher = common::Publisher::connect(&daemon, "unregistered").await;
    publisher
        .reading("WS990", "2025-01-13T10:00:00Z", 10.0)
        .await;
    publisher
        .reading("WS991", "2025-01-13T10:00:00Z", 10.0)
        .await;
    assert_eq!(stations(&daemon, 1).await, ["WS990"]);
    assert_eq!(
        quarantined(&daemon, "station_not_registered", 1).await,
        ["WS991"]
    );
    drop(publisher);
    assert_eq!(daemon.terminate(), Some(0));
}

/// Written by `mosquitto_passwd -b FILE station1 s3cret-pass`.
const STATION1: &str = "station1:$7$101$u66KaIyFFPAesF/w$NTTOKFx8Es3xkoWhYByxuMTTSBqVNe3KY2jGJyMTgRbFnLbkWopt9mN8cCKNX1Jgaj2LIfqc5kUbqagsMzNmaw==";

/// Connects to the embedded server with this client id and login, and
/// publishes a reading on each `(topic station, reading station)` given;
/// `None` if the connection is refused, else whether each was
/// acknowledged, in order.
async fn server_takes(
    daemon: &Daemon,
    client_id: &str,
    login: Option<(&str, &str)>,
    readings: &[(&str, &str)],
) -> Option<usize> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let mut options = MqttOptions::new(client_id, &daemon.mqtt_host, daemon.mqtt_port);
    options.set_keep_alive(Duration::from_secs(10));
    if let Some((user, password)) = login {
        options.set_credentials(user, password);
    }
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    for (station, at) in readings {
        client
            .publish(
                format!("weather/{station}/observations"),
                QoS::AtLeastOnce,
                false,
                common::reading(station, at, 11.0),
            )
            .await
            .unwrap();
    }
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        let mut acked = 0;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acked += 1;
                    if acked == readings.len() {
                        return Some(acked);
                    }
                }
                Ok(Event::Incoming(Packet::ConnAck(_))) if readings.is_empty() => return Some(0),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    })
    .await
    .ok()
    .flatten();
    let _ = client.disconnect().await;
    outcome
}

/// With `mqtt.users_file`, the embedded server takes only its users; with
/// `mqtt.acl_file`, a user publishes only where the rules allow (here,
/// each station its own topic), and a publish elsewhere is quarantined as
/// not authorized. Nobody can subscribe, so no client, whatever id it
/// takes, receives the network's readings; the daemon goes on ingesting.
/// Listening beyond loopback without users is refused unless it is said
/// to be meant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_server_takes_only_its_users_where_they_may_publish() {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeReasonCode};
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("mqtt-users");
    std::fs::write(&users, format!("{STATION1}\n")).unwrap();
    let acl = dir.path().join("mqtt-acl");
    std::fs::write(&acl, "pattern write weather/%u/observations\n").unwrap();
    let daemon = Daemon::start_with_env(
        &[],
        &[
            ("ISOBAR__MQTT__USERS_FILE", users.to_str().unwrap()),
            ("ISOBAR__MQTT__ACL_FILE", acl.to_str().unwrap()),
        ],
    );
    assert_eq!(server_takes(&daemon, "anonymous", None, &[]).await, None);
    assert_eq!(
        server_takes(&daemon, "guesser", Some(("station1", "wrong")), &[]).await,
        None
    );

    // A client that takes any id, the daemon's own included, and
    // subscribes to everything, is refused the subscription.
    let mut options = MqttOptions::new("isobar", &daemon.mqtt_host, daemon.mqtt_port);
    options
        .set_credentials("station1", "s3cret-pass")
        .set_clean_session(false);
    let (spy, mut spying) = AsyncClient::new(options, 10);
    spy.subscribe("#", QoS::AtLeastOnce).await.unwrap();
    let suback = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(Event::Incoming(Packet::SubAck(ack))) = spying.poll().await {
                return ack;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(suback.return_codes, [SubscribeReasonCode::Failure]);

    // Its own topic: stored. Another station's: quarantined, not stored.
    assert_eq!(
        server_takes(
            &daemon,
            "station1",
            Some(("station1", "s3cret-pass")),
            &[
                ("station1", "2025-01-13T10:00:00Z"),
                ("WS975", "2025-01-13T10:00:00Z")
            ]
        )
        .await,
        Some(2)
    );
    // Both were acknowledged, so both are in the store already.
    let (_, body) = daemon
        .get("/api/v1/stations/station1/readings?from=2025-01-13T00:00:00Z&to=2025-01-14T00:00:00Z")
        .await;
    assert_eq!(body["readings"].as_array().unwrap().len(), 1, "{body}");
    let (_, body) = daemon.get("/api/v1/quarantine").await;
    let refused: Vec<&Value> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["reason_code"] == "not_authorized")
        .collect();
    assert_eq!(refused.len(), 1, "{body}");
    assert_eq!(
        refused[0]["reason"],
        r#"user "station1" may not publish to "weather/WS975/observations" (mqtt.acl_file)"#
    );
    let (_, body) = daemon
        .get("/api/v1/stations/WS975/readings?from=2025-01-13T00:00:00Z&to=2025-01-14T00:00:00Z")
        .await;
    assert_eq!(body["readings"].as_array().map_or(0, Vec::len), 0, "{body}");

    // The spy heard nothing.
    let heard = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            if let Ok(Event::Incoming(Packet::Publish(p))) = spying.poll().await {
                return p;
            }
        }
    })
    .await;
    assert!(heard.is_err(), "a client received {heard:?}");
    let logs = daemon.logs().join("\n");
    assert!(logs.contains("refused a subscription"), "{logs}");
    assert!(logs.contains("refused an MQTT login"), "{logs}");
    assert!(!logs.contains("s3cret-pass"));
    assert_eq!(daemon.terminate(), Some(0));

    // Beyond loopback without users: refused, unless allowed.
    let check = |env: &[(&str, &str)]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_isobar"))
            .arg("check-config")
            .env("ISOBAR__MQTT__LISTEN", "0.0.0.0:1883")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let out = check(&[]);
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mqtt.listen: the embedded server would take anyone's readings"),
        "{stderr}"
    );
    assert_eq!(
        check(&[("ISOBAR__MQTT__ALLOW_ANONYMOUS", "true")])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        check(&[("ISOBAR__MQTT__USERS_FILE", users.to_str().unwrap())])
            .status
            .code(),
        Some(0)
    );
}

/// With reads protected, a browser opens the websocket, or follows a
/// download link, with a ticket that a read key bought: good once, and
/// nothing without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_websocket_takes_a_ticket_when_reads_are_protected() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let daemon = Daemon::start_with_env(
        &[],
        &[
            ("ISOBAR__WEB__AUTH__READ_KEYS", &format!("[\"{READ_KEY}\"]")),
            (
                "ISOBAR__WEB__AUTH__API_KEYS",
                &format!("[\"{INGEST_KEY}\"]"),
            ),
            ("ISOBAR__WEB__AUTH__PROTECT_READS", "true"),
        ],
    );
    let open = |query: String, key: Option<&'static str>| {
        let url = format!("ws://{}/api/v1/live{query}", daemon.web);
        async move {
            let mut request = url.into_client_request().unwrap();
            if let Some(key) = key {
                request
                    .headers_mut()
                    .insert("x-api-key", key.parse().unwrap());
            }
            match tokio_tungstenite::connect_async(request).await {
                Ok(_) => 101,
                Err(tokio_tungstenite::tungstenite::Error::Http(r)) => r.status().as_u16(),
                Err(e) => panic!("{e}"),
            }
        }
    };
    assert_eq!(open(String::new(), None).await, 401);
    assert_eq!(open("?ticket=made-up".into(), None).await, 401);
    assert_eq!(open(String::new(), Some(READ_KEY)).await, 101);

    let client = reqwest::Client::new();
    let ticket = |key: Option<&'static str>| {
        let mut request = client.post(daemon.url("/api/v1/live/ticket"));
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(ticket(None).await.0, 401);
    let (status, body) = ticket(Some(READ_KEY)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in_s"], 30);
    let t = body["ticket"].as_str().unwrap().to_owned();
    assert_eq!(open(format!("?ticket={t}&stations=WS001"), None).await, 101);
    // Used up.
    assert_eq!(open(format!("?ticket={t}"), None).await, 401);

    // A download link takes a ticket too, once.
    assert_eq!(
        upload(&daemon, "WS977", 0, Some(("x-api-key", INGEST_KEY)))
            .await
            .0,
        200
    );
    let csv = |query: String| {
        let url = daemon.url(&format!(
            "/api/v1/stations/WS977/readings.csv?from=2025-01-13T00:00:00Z&to=2025-01-14T00:00:00Z{query}"
        ));
        async move { reqwest::get(url).await.unwrap() }
    };
    assert_eq!(csv(String::new()).await.status().as_u16(), 401);
    let t = ticket(Some(READ_KEY)).await.1["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    let download = csv(format!("&ticket={t}")).await;
    assert_eq!(download.status().as_u16(), 200);
    assert!(
        download
            .text()
            .await
            .unwrap()
            .starts_with("station_id,observed_at")
    );
    assert_eq!(csv(format!("&ticket={t}")).await.status().as_u16(), 401);
    assert_eq!(daemon.terminate(), Some(0));
}
