//! The dashboard through the real binary: the build embedded in it by
//! default, a directory on disk with `web.static_dir`, and the API's own
//! answers untouched by the page fallback.

use crate::common;

use common::Daemon;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The binary under test embeds `frontend/dist` as it was when it was
/// compiled; without it these tests cannot say anything.
fn require_embedded_dashboard() {
    assert!(
        isobar::web::dashboard::embedded_files() > 0,
        "this build has no dashboard embedded: run `make frontend` (or scripts/test.sh, which \
         builds it first) before `cargo test`"
    );
}

/// The `src` of each `<script>` in a page, as written.
fn script_sources(html: &str) -> Vec<&str> {
    html.split("<script")
        .skip(1)
        .filter_map(|tag| {
            let tag = &tag[..tag.find('>')?];
            let src = &tag[tag.find("src=\"")? + 5..];
            Some(&src[..src.find('"')?])
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_dashboard_is_served_without_a_static_dir() {
    require_embedded_dashboard();
    let daemon = Daemon::start(&[]);
    let client = reqwest::Client::new();

    let index = reqwest::get(daemon.url("/")).await.unwrap();
    assert_eq!(index.status().as_u16(), 200);
    assert_eq!(index.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(index.headers()[CACHE_CONTROL], "no-cache");
    let index = index.text().await.unwrap();
    assert!(index.contains("id=\"root\""), "{index}");

    // A view's path is sent to the view's address, the fragment the page
    // routes by; followed, it is the page.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let route = plain
        .get(daemon.url("/stations/WS%20001"))
        .send()
        .await
        .unwrap();
    assert_eq!(route.status().as_u16(), 302);
    assert_eq!(route.headers()["location"], "/#/stations/WS%20001");
    let followed = reqwest::get(daemon.url("/alerts")).await.unwrap();
    assert_eq!(followed.status().as_u16(), 200);
    assert_eq!(followed.text().await.unwrap(), index);

    // The page's script, under its hashed name, may be kept for good.
    let script = script_sources(&index)
        .into_iter()
        .find(|src| src.contains("assets/") && src.ends_with(".js"))
        .unwrap_or_else(|| panic!("no script under assets/ in {index}"));
    let script = format!(
        "/{}",
        script.trim_start_matches("./").trim_start_matches('/')
    );
    let response = reqwest::get(daemon.url(&script)).await.unwrap();
    assert_eq!(response.status().as_u16(), 200, "{script}");
    assert_eq!(
        response.headers()[CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(response.headers()[CACHE_CONTROL], IMMUTABLE);
    let etag = response.headers()[ETAG].clone();
    assert!(response.headers().get("content-encoding").is_none());
    let plain_script = response.bytes().await.unwrap();
    assert!(!plain_script.is_empty());
    // Sent gzipped to a client that takes it: the same bytes, a third of the size.
    let gzipped = client
        .get(daemon.url(&script))
        .header("accept-encoding", "br, gzip;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(gzipped.status().as_u16(), 200);
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    assert_eq!(gzipped.headers()["vary"], "accept-encoding");
    let gz_etag = gzipped.headers()[ETAG].clone();
    assert_ne!(gz_etag, etag, "another representation, another tag");
    let compressed = gzipped.bytes().await.unwrap();
    assert!(
        compressed.len() * 2 < plain_script.len(),
        "{} of {} bytes",
        compressed.len(),
        plain_script.len()
    );
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&compressed[..]),
        &mut unzipped,
    )
    .unwrap();
    assert_eq!(unzipped, plain_script);
    let response = client
        .get(daemon.url(&script))
        .header("accept-encoding", "gzip")
        .header(IF_NONE_MATCH, gz_etag)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 304);
    // Revalidation by its ETag.
    let response = client
        .get(daemon.url(&script))
        .header(IF_NONE_MATCH, etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 304);
    assert_eq!(response.headers()[ETAG], etag);
    let response = client
        .get(daemon.url(&script))
        .header(IF_NONE_MATCH, "\"another\"")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    // HEAD: the headers of a GET, no body.
    let head = client.head(daemon.url("/")).send().await.unwrap();
    assert_eq!(head.status().as_u16(), 200);
    assert_eq!(
        head.headers()["content-length"],
        index.len().to_string().as_str()
    );
    assert!(head.bytes().await.unwrap().is_empty());

    // The API's documentation page and the Swagger UI it loads.
    let docs = reqwest::get(daemon.url("/docs/")).await.unwrap();
    assert_eq!(docs.status().as_u16(), 200);
    assert_eq!(docs.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
    let docs = docs.text().await.unwrap();
    assert!(docs.contains("swagger-ui"), "{docs}");
    let bundle = reqwest::get(daemon.url("/docs/swagger-ui-bundle.js"))
        .await
        .unwrap();
    assert_eq!(bundle.status().as_u16(), 200);
    assert_eq!(
        bundle.headers()[CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(bundle.headers()[CACHE_CONTROL], "no-cache");

    // The API's 404 stays the API's; a missing asset is no page.
    for path in ["/api/v1/nope", "/assets/index-0ld.js"] {
        let (status, body) = daemon.get(path).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(body["error"], "not_found", "{path}: {body}");
    }
    assert_eq!(daemon.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_dir_is_served_instead_of_the_embedded_dashboard() {
    let site = tempfile::tempdir().unwrap();
    std::fs::create_dir(site.path().join("assets")).unwrap();
    std::fs::write(
        site.path().join("index.html"),
        "<div id=\"root\">from disk</div>",
    )
    .unwrap();
    std::fs::write(site.path().join("assets/app.js"), "console.log(1)").unwrap();
    std::fs::create_dir(site.path().join("docs")).unwrap();
    std::fs::write(
        site.path().join("docs/index.html"),
        "<title>isobar API</title>",
    )
    .unwrap();
    let dir = site.path().to_str().unwrap();
    let daemon = Daemon::start_with_env(&[], &[("ISOBAR__WEB__STATIC_DIR", dir)]);

    for (path, body) in [
        ("/", "<div id=\"root\">from disk</div>"),
        ("/assets/app.js", "console.log(1)"),
        ("/docs/", "<title>isobar API</title>"),
    ] {
        let response = reqwest::get(daemon.url(path)).await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        // Files change under a watching build.
        assert_eq!(response.headers()[CACHE_CONTROL], "no-cache", "{path}");
        assert_eq!(response.text().await.unwrap(), body, "{path}");
    }
    let (status, body) = daemon.get("/api/v1/nope").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // A view's path goes to the view, as with the embedded files.
    let response = plain.get(daemon.url("/system")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 302);
    assert_eq!(response.headers()["location"], "/#/system");
    // The docs page's relative asset URLs need the slash.
    let response = plain.get(daemon.url("/docs")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 308);
    assert_eq!(response.headers()["location"], "/docs/");
    // The OpenAPI document it loads.
    let (status, doc) = daemon.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
    assert!(doc["paths"]["/api/v1/stations/{id}/readings"]["get"].is_object());

    let (status, health) = daemon.get("/health").await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let (status, ready) = daemon.get("/ready").await;
    assert_eq!(status, 200);
    assert_eq!(
        ready,
        serde_json::json!({"status": "ready", "checks": {"mqtt": "ok", "store": "ok", "cache": "ok", "archive": "ok", "broker": "ok"}})
    );
    assert_eq!(daemon.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_dir_without_a_build_says_so() {
    let empty = tempfile::tempdir().unwrap();
    let dir = empty.path().to_str().unwrap();
    let daemon = Daemon::start_with_env(&[], &[("ISOBAR__WEB__STATIC_DIR", dir)]);
    let (status, body) = daemon.get("/stations/WS001").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "dashboard_not_built", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("make frontend"),
        "{body}"
    );
    assert!(
        daemon
            .logs()
            .iter()
            .any(|l| l.contains("web.static_dir has no index.html")),
        "{:#?}",
        daemon.logs()
    );
    assert_eq!(daemon.terminate(), Some(0));
}
