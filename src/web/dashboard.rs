//! The dashboard's files (`frontend/dist`): embedded in the binary when it
//! was built (see `build.rs`), or read from `web.static_dir` on disk when
//! that is set, for development with `vite build --watch`. The dashboard
//! addresses its views by the URL fragment (`/#/stations/WS001`); a path
//! that names no file, outside the API and `assets/`, is redirected to the
//! same address as a fragment, so `/stations/WS001` opens that view.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode, header};
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
    /// The same bytes gzipped, for a text file that shrinks.
    pub gzip: Option<&'static [u8]>,
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
    let files = match static_dir {
        Some(dir) => from_dir(dir).boxed(),
        None => embedded().boxed(),
    };
    docs_directory().or(files).unify().boxed()
}

/// `/docs` is a directory of the build (`docs/`), whose page loads its
/// assets by relative URLs: those resolve only under `/docs/`. (warp's
/// path filters match `/docs/` too, so the path is compared whole.)
fn docs_directory() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::get()
        .and(warp::path::full())
        .and_then(|path: warp::path::FullPath| async move {
            if path.as_str() == "/docs" {
                Ok(
                    warp::redirect::permanent(warp::http::Uri::from_static("/docs/"))
                        .into_response(),
                )
            } else {
                Err(warp::reject::not_found())
            }
        })
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
        .and(warp::header::optional::<String>("if-none-match"))
        .and(warp::header::optional::<String>("accept-encoding"))
        .and_then(
            |path: warp::path::FullPath,
             if_none_match: Option<String>,
             accept_encoding: Option<String>| async move {
                let Some(file) = find(path.as_str()) else {
                    if !is_page(path.as_str()) {
                        return Err(warp::reject::not_found());
                    }
                    // build.rs embeds the files only with an index.html.
                    if FILES.is_empty() {
                        return Err(not_built(
                            "this isobar binary was built without the dashboard; run `make \
                             frontend` and build it again, or set web.static_dir to a built \
                             dashboard"
                                .into(),
                        ));
                    }
                    return Ok(to_view(path.as_str()));
                };
                let gzip = accept_encoding.as_deref().is_some_and(accepts_gzip);
                Ok(reply(file, if_none_match.as_deref(), gzip))
            },
        )
}

/// The page's address for a path that names no file: the path becomes
/// the fragment the dashboard routes by. (Serving the page itself there
/// would break it: it loads its assets by relative URLs.)
fn to_view(path: &str) -> Response {
    let location = format!("/#{path}");
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(REVALIDATE));
    response
}

/// The embedded file a request path names; a directory's is its
/// `index.html` (`/`, `/docs/`).
fn find(path: &str) -> Option<&'static EmbeddedFile> {
    let path = percent_decode_str(path.strip_prefix('/').unwrap_or(path))
        .decode_utf8()
        .ok()?;
    let path = if path.is_empty() || path.ends_with('/') {
        Cow::Owned(format!("{path}index.html"))
    } else {
        path
    };
    FILES
        .binary_search_by(|f| f.path.cmp(&path))
        .ok()
        .map(|i| &FILES[i])
}

fn reply(file: &'static EmbeddedFile, if_none_match: Option<&str>, accepts_gzip: bool) -> Response {
    // The gzip copy is another representation, with a tag of its own.
    let (body, etag, encoded) = match file.gzip {
        Some(gz) if accepts_gzip => (gz, Cow::Owned(gzip_etag(file.etag)), true),
        _ => (file.body, Cow::Borrowed(file.etag), false),
    };
    let mut response = if if_none_match.is_some_and(|tags| matches_etag(tags, &etag)) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = body.into_response();
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(file.content_type),
        );
        if encoded {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    };
    let cache = if file.path.starts_with(IMMUTABLE_DIR) {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    let etag = match etag {
        Cow::Borrowed(tag) => Ok(HeaderValue::from_static(tag)),
        Cow::Owned(tag) => HeaderValue::try_from(tag),
    };
    if let Ok(value) = etag {
        h.insert(header::ETAG, value);
    }
    if file.gzip.is_some() {
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    response
}

/// `"abc"` → `"abc-gz"`.
fn gzip_etag(etag: &str) -> String {
    format!("{}-gz\"", etag.trim_end_matches('"'))
}

/// Whether `Accept-Encoding` takes gzip: listed (or `*`) without `q=0`.
fn accepts_gzip(accept: &str) -> bool {
    accept.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or_default();
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

/// `If-None-Match`: `*`, or a list of tags, weak ones compared by their
/// value (RFC 9110 §13.1.2).
fn matches_etag(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

fn not_built(message: String) -> Rejection {
    warp::reject::custom(ApiError {
        status: StatusCode::NOT_FOUND,
        code: "dashboard_not_built",
        message,
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
    match tokio::fs::metadata(&index).await {
        Ok(meta) if meta.is_file() => Ok(to_view(path.as_str())),
        _ => Err(not_built(format!(
            "the dashboard is not built ({} is missing); run `make frontend`",
            index.display()
        ))),
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
    fn accept_encoding_takes_gzip_unless_refused() {
        assert!(accepts_gzip("gzip, deflate, br"));
        assert!(accepts_gzip("br;q=1.0, GZIP;q=0.5"));
        assert!(accepts_gzip("*"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("br, deflate"));
        assert!(!accepts_gzip(""));
        assert_eq!(gzip_etag("\"abc\""), "\"abc-gz\"");
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
