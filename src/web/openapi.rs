//! The OpenAPI 3.1 document, generated from the handlers' annotations and
//! the types they answer with, served at `/api/v1/openapi.json`. A test
//! holds it to the route table, so it cannot drift from what is served.

use std::sync::OnceLock;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use warp::{Filter, Rejection, Reply};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "isobar",
        description = "A weather-station network: stations, their readings and rollups, alerts, quarantine and the supervision tree. Errors are `{\"error\": code, \"message\": text}` with a 4xx or 5xx status.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        super::health,
        super::ready,
        super::metrics,
        super::api::list_stations,
        super::api::station,
        super::api::latest_all,
        super::api::latest,
        super::api::readings,
        super::export::readings_csv,
        super::api::rollups,
        super::quality::qc_summary,
        super::api::summary,
        super::api::alerts,
        super::api::quarantine,
        super::api::supervision,
        super::ingest::ingest_json,
        super::ingest::ingest_ecowitt,
        super::ingest::ingest_wunderground,
        super::live::live,
        super::live::ticket,
        openapi_json,
    ),
    // Schemas that only parameters name; those of bodies come with them.
    components(schemas(super::api::AlertState, crate::domain::Resolution, crate::domain::StationId)),
    modifiers(&Credentials),
    tags(
        (name = "stations", description = "Stations and their latest readings"),
        (name = "history", description = "Readings and rollups over a range, in pages, and CSV export"),
        (name = "alerts", description = "Alerts from the rules in [alerts]"),
        (name = "quarantine", description = "Messages rejected as readings"),
        (name = "supervision", description = "The supervision tree"),
        (name = "ingest", description = "Uploads over HTTP"),
        (name = "live", description = "The websocket"),
        (name = "probes", description = "Liveness, readiness and metrics"),
    )
)]
pub struct ApiDoc;

/// The credentials `web.auth` takes: an API key in `X-API-Key`, or a key or
/// a JWT (HS256 or RS256) as a bearer token. Uploads need one once any is
/// configured; reads need one with `web.auth.protect_reads`.
struct Credentials;

impl Modify for Credentials {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        // Every route but the probes is rate-limited per client.
        for (path, item) in doc.paths.paths.iter_mut() {
            if matches!(path.as_str(), "/health" | "/ready" | "/metrics") {
                continue;
            }
            for op in [&mut item.get, &mut item.post].into_iter().flatten() {
                op.responses.responses.insert(
                    "429".into(),
                    utoipa::openapi::ResponseBuilder::new()
                        .description("too many requests from this client; see Retry-After")
                        .content(
                            "application/json",
                            utoipa::openapi::ContentBuilder::new()
                                .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                                .build(),
                        )
                        .into(),
                );
            }
        }
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("API key or JWT")
                    .build(),
            ),
        );
    }
}

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
        plain_references(&mut doc);
        serde_json::to_string_pretty(&doc).expect("the document serialises")
    })
}

/// utoipa writes a field of a type with a `Default` as `{"oneOf": [{"$ref"}],
/// "default": …}`. The default of a config type says nothing about an
/// answer, and client generators refuse a default on an object, so such a
/// field becomes the plain reference (with its description).
fn plain_references(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            let single_ref = map
                .get("oneOf")
                .and_then(|o| o.as_array())
                .filter(|o| o.len() == 1 && o[0].get("$ref").is_some())
                .map(|o| o[0].clone());
            if let Some(reference) = single_ref {
                map.remove("oneOf");
                map.remove("default");
                if let Some(r) = reference.get("$ref") {
                    map.insert("$ref".into(), r.clone());
                }
            }
            map.values_mut().for_each(plain_references);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(plain_references),
        _ => {}
    }
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "probes",
    responses((status = 200, content_type = "application/json", body = Object)))]
fn openapi_json() -> impl Reply {
    warp::reply::with_header(document(), "content-type", "application/json")
}

/// `GET openapi.json`, under `/api/v1`.
pub fn route() -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("openapi.json")
        .and(warp::get())
        .map(openapi_json)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `warp::path!` in the web sources, as an OpenAPI path: the
    /// route table as the server has it.
    fn served_routes() -> Vec<String> {
        let sources = [
            ("", include_str!("../web.rs")),
            ("/api/v1", include_str!("api.rs")),
            ("/api/v1", include_str!("live.rs")),
            ("/api/v1", include_str!("quality.rs")),
            ("/api/v1", include_str!("openapi.rs")),
            ("", include_str!("ingest.rs")),
        ];
        let mut routes = Vec::new();
        for (prefix, source) in sources {
            for (i, _) in source.match_indices("warp::path!(") {
                // Not this test's own mention of the macro, in quotes.
                if source[..i].ends_with('"') {
                    continue;
                }
                let rest = &source[i + 12..];
                let inner = &rest[..rest.find(')').expect("a closed macro")];
                let segments: Vec<String> = inner
                    .split('/')
                    .map(|s| s.trim())
                    .map(
                        |s| match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                            Some(literal) => literal.to_owned(),
                            None => "{}".to_owned(),
                        },
                    )
                    .collect();
                routes.push(format!("{prefix}/{}", segments.join("/")));
            }
        }
        // The test-only fault route is not part of the API.
        routes.retain(|r| !r.starts_with("/faults/"));
        routes.sort();
        routes.dedup();
        routes
    }

    #[test]
    fn every_served_route_is_in_the_document_and_nothing_else() {
        let doc: serde_json::Value = serde_json::from_str(document()).unwrap();
        let mut documented: Vec<String> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(|p| {
                p.split('/')
                    .map(|s| if s.starts_with('{') { "{}" } else { s })
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .collect();
        documented.sort();
        let served = served_routes();
        assert!(served.len() >= 15, "{served:?}");
        assert_eq!(documented, served);
    }

    #[test]
    fn the_document_is_openapi_3_1_and_every_reference_resolves() {
        let doc: serde_json::Value = serde_json::from_str(document()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let text = document();
        for (i, _) in text.match_indices("\"#/components/schemas/") {
            let name = &text[i + "\"#/components/schemas/".len()..];
            let name = &name[..name.find('"').unwrap()];
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{name} is referenced but not defined"
            );
        }
    }
}
