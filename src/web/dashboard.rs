//! The dashboard's files (`frontend/dist`): embedded in the binary when it
//! was built (see `build.rs`), or read from `web.static_dir` on disk when
//! that is set, for development with `vite build --watch`. Paths that name
//! no file, outside the API and `assets/`, get `index.html`, so the
//! dashboard's client-side routes survive a reload.

use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::ApiError;

/// One file of the dashboard's build, as `build.rs` embeds it.
pub(super) struct EmbeddedFile {
    /// Relative to `dist`, `/`-separated: `assets/index-1a2b3c.js`.
    pub path: &'static str,
    pub content_type: &'static str,
    /// A hash of the content, quoted.
    pub etag: &'static str,
    pub body: &'static [u8],
}

// `FILES`: every file of the build, sorted by path; empty when the binary
// was built without the dashboard.
include!(concat!(env!("OUT_DIR"), "/dashboard.rs"));

/// Prefixes of the API's routes: never answered with the dashboard's page,
/// so a route's refusal (a 401, say) reaches the client.
const NOT_PAGES: [&str; 2] = ["/api/", "/weatherstation/"];

/// Vite's output, with content hashes in the names: a name never changes
/// content, so browsers may keep them. Anything else (`index.html`,
/// `config.js`, `docs/`) keeps its name across builds and is revalidated.
const IMMUTABLE_DIR: &str = "assets/";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

/// How many files the binary holds: 0 when it was built without the
/// dashboard.
pub fn embedded_files() -> usize {
    FILES.len()
}

/// Says at start where the dashboard comes from, and warns when there is
/// none to serve.
pub fn log_source(static_dir: Option<&Path>) {
    match static_dir {
        Some(dir) if !dir.join("index.html").is_file() => tracing::warn!(
            static_dir = %dir.display(),
            "web.static_dir has no index.html: the dashboard answers 404 until it is built there"
        ),
        Some(dir) => tracing::info!(static_dir = %dir.display(), "dashboard served from disk"),
        None if FILES.is_empty() => tracing::warn!(
            "this binary was built without the dashboard: run `make frontend` and rebuild, or set web.static_dir"
        ),
        None => tracing::info!(files = FILES.len(), "dashboard served from the binary"),
    }
}

/// GET and HEAD of the dashboard: from `static_dir` when set, else from the
/// files embedded at build time.
pub(super) fn route(static_dir: Option<PathBuf>) -> BoxedFilter<(Response,)> {
    match static_dir {
        Some(dir) => from_dir(dir).boxed(),
        None => embedded().boxed(),
    }
}

fn get_or_head() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::get().or(warp::head()).unify()
}

/// Whether a path that names no file gets the dashboard's page: not the
/// API's (whose own 404 or 401 must reach the client), and not a missing
/// asset (a page from an older build asking for its scripts must get a
/// 404, not HTML under a script's name).
fn is_page(path: &str) -> bool {
    !NOT_PAGES.iter().any(|p| path.starts_with(p))
        && !path
            .strip_prefix('/')
            .is_some_and(|p| p.starts_with(IMMUTABLE_DIR))
}

fn embedded() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    get_or_head()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and_then(
            |path: warp::path::FullPath, headers: HeaderMap| async move {
                let file = match find(path.as_str()) {
                    Some(file) => file,
                    None if !is_page(path.as_str()) => return Err(warp::reject::not_found()),
                    None => find("/").ok_or_else(not_embedded)?,
                };
                let if_none_match = headers
                    .get(header::IF_NONE_MATCH)
                    .and_then(|v| v.to_str().ok());
                Ok::<_, Rejection>(reply(file, if_none_match))
            },
        )
}

/// The embedded file a request path names; a directory's is its
/// `index.html` (`/`, `/docs/`).
fn find(path: &str) -> Option<&'static EmbeddedFile> {
    let path = percent_decode_str(path.strip_prefix('/').unwrap_or(path))
        .decode_utf8()
        .ok()?;
    let path = if path.is_empty() || path.ends_with('/') {
        format!("{path}index.html")
    } else {
        path.into_owned()
    };
    FILES
        .binary_search_by(|f| f.path.cmp(path.as_str()))
        .ok()
        .map(|i| &FILES[i])
}

fn reply(file: &'static EmbeddedFile, if_none_match: Option<&str>) -> Response {
    let mut response = if if_none_match.is_some_and(|tags| matches_etag(tags, file.etag)) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = file.body.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(file.content_type),
        );
        response
    };
    let cache = if file.path.starts_with(IMMUTABLE_DIR) {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::ETAG, HeaderValue::from_static(file.etag));
    response
}

/// `If-None-Match`: `*`, or a list of tags, weak ones compared by their
/// value (RFC 9110 §13.1.2).
fn matches_etag(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

fn not_embedded() -> Rejection {
    warp::reject::custom(ApiError {
        status: StatusCode::NOT_FOUND,
        code: "dashboard_not_built",
        message: "this isobar binary was built without the dashboard; run `make frontend` and \
                  build it again, or set web.static_dir to a built dashboard"
            .into(),
    })
}

fn from_dir(dir: PathBuf) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let index = dir.join("index.html");
    // Files change under a watching build: always revalidated.
    let files = warp::fs::dir(dir).map(|file: warp::fs::File| {
        warp::reply::with_header(file, header::CACHE_CONTROL, REVALIDATE).into_response()
    });
    let fallback = get_or_head()
        .and(warp::path::full())
        .and_then(move |path: warp::path::FullPath| page_from_disk(index.clone(), path));
    files.or(fallback).unify()
}

async fn page_from_disk(index: PathBuf, path: warp::path::FullPath) -> Result<Response, Rejection> {
    if !is_page(path.as_str()) {
        return Err(warp::reject::not_found());
    }
    match tokio::fs::read(&index).await {
        Ok(html) => Ok(warp::reply::with_header(
            warp::reply::html(html),
            header::CACHE_CONTROL,
            REVALIDATE,
        )
        .into_response()),
        Err(_) => Err(warp::reject::custom(ApiError {
            status: StatusCode::NOT_FOUND,
            code: "dashboard_not_built",
            message: format!(
                "the dashboard is not built ({} is missing); run `make frontend`",
                index.display()
            ),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_exclude_the_api_and_missing_assets() {
        assert!(is_page("/"));
        assert!(is_page("/stations/WS001"));
        assert!(is_page("/docs/"));
        assert!(is_page("/assets"));
        assert!(!is_page("/assets/index-0ld.js"));
        assert!(!is_page("/api/v1/nope"));
        assert!(!is_page("/weatherstation/updateweatherstation.php"));
    }

    #[test]
    fn if_none_match_takes_lists_weak_tags_and_any() {
        let etag = "\"abc\"";
        assert!(matches_etag("\"abc\"", etag));
        assert!(matches_etag("\"x\", W/\"abc\"", etag));
        assert!(matches_etag("*", etag));
        assert!(!matches_etag("\"abcd\"", etag));
        assert!(!matches_etag("abc", etag));
    }

    #[test]
    fn the_table_is_sorted_for_lookup() {
        assert!(FILES.windows(2).all(|w| w[0].path < w[1].path));
        if !FILES.is_empty() {
            assert_eq!(find("/").map(|f| f.path), Some("index.html"));
        }
        assert!(find("/no-such-file.js").is_none());
        assert!(find("/%ff").is_none(), "not UTF-8 once decoded");
    }
}
