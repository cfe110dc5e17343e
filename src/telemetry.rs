//! Logs and traces. Logs go to stderr as text or JSON (`[log]`). With
//! `telemetry.otlp_endpoint` set, the spans that follow each reading
//! (`reading`, with `ingest`, `station`, `persist` and `hub` beneath it)
//! are exported over OTLP/HTTP through tracing-opentelemetry.
//!
//! The reading-path spans have their own target, [`TRACE_TARGET`], which
//! the log filter leaves out. Without an endpoint a global filter turns
//! them off at their call sites: creating one then costs a check of a
//! cached flag, and the span registry never sees them (a per-layer filter
//! alone would still have it allocate and free every span).

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::config::{LogFormat, LogSettings, OtlpProtocol, TelemetrySettings};

/// The target of the spans that follow a reading through the pipeline.
pub const TRACE_TARGET: &str = "isobar::trace";

/// What has to be shut down at exit: the exporter sends what it holds.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("isobar: exporting the last traces failed: {e}");
        }
    }
}

/// The log filter: `level`, and never the reading-path spans.
pub fn log_filter(level: &str) -> String {
    format!("{level},{TRACE_TARGET}=off")
}

/// Installs the process's subscriber: logs, and traces when configured.
pub fn init(log: &LogSettings, telemetry: &TelemetrySettings) -> Result<Telemetry, String> {
    let filter = EnvFilter::new(log_filter(&log.level));
    let fmt = match log.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
        // Colours only for a terminal: a log file or pipe gets plain text.
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .boxed(),
    }
    .with_filter(filter);
    let provider = match &telemetry.otlp_endpoint {
        None => None,
        Some(endpoint) => Some(provider(endpoint, telemetry)?),
    };
    let installed = match &provider {
        Some(p) => Registry::default()
            .with(fmt)
            .with(
                tracing_opentelemetry::layer()
                    .with_tracer(p.tracer("isobar"))
                    .with_filter(Targets::new().with_target(TRACE_TARGET, tracing::Level::INFO)),
            )
            .try_init(),
        // No layer in the stack wants the reading spans: say so once per
        // call site, so they are never built.
        None => Registry::default()
            .with(fmt)
            .with(tracing_subscriber::filter::filter_fn(|m| {
                m.target() != TRACE_TARGET
            }))
            .try_init(),
    };
    installed.map_err(|e| e.to_string())?;
    if let Some(endpoint) = &telemetry.otlp_endpoint {
        tracing::info!(endpoint = %endpoint, ratio = telemetry.sample_ratio, "exporting traces over OTLP");
    }
    Ok(Telemetry { provider })
}

fn provider(endpoint: &str, t: &TelemetrySettings) -> Result<SdkTracerProvider, String> {
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let protocol = match t.otlp_protocol {
        OtlpProtocol::HttpProtobuf => Protocol::HttpBinary,
        OtlpProtocol::HttpJson => Protocol::HttpJson,
    };
    let (ratio, service) = (t.sample_ratio, t.service_name.clone());
    // The blocking HTTP client starts a runtime of its own, which may not
    // be done from within the daemon's: build it on a thread of its own.
    std::thread::spawn(move || {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url)
            .with_protocol(protocol)
            .build()
            .map_err(|e| format!("telemetry.otlp_endpoint: {e}"))?;
        Ok(SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                ratio,
            ))))
            .with_resource(Resource::builder().with_service_name(service).build())
            .build())
    })
    .join()
    .map_err(|_| "building the OTLP exporter panicked".to_owned())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_never_carry_the_reading_spans() {
        assert_eq!(log_filter("info"), "info,isobar::trace=off");
        assert_eq!(
            log_filter("info,isobar=debug"),
            "info,isobar=debug,isobar::trace=off"
        );
    }
}
