//! OpenTelemetry traces over OTLP/HTTP, from surql's `tracing` spans
//! (deployment → wave → environment → migration; approval and gate calls).
//!
//! Configured by the standard variables (`OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_SERVICE_NAME` …) and off when no endpoint is set: then no layer
//! exists and the spans cost one disabled-callsite check each. Spans are
//! batched and sent from the SDK's own thread, never from a deployment's.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;

/// The longest one export request may take: a collector that hangs never
/// holds a deployment's exit longer.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends OTLP requests with ureq on the batch processor's thread (blocking is
/// fine there; the SDK gives that thread no runtime).
#[derive(Debug)]
struct UreqClient(ureq::Agent);

#[async_trait::async_trait]
impl HttpClient for UreqClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let request = http::Request::from_parts(parts, body.to_vec());
        let response = self.0.run(request)?;
        let (parts, mut body) = response.into_parts();
        let bytes = body.read_to_vec()?;
        Ok(Response::from_parts(parts, Bytes::from(bytes)))
    }
}

/// The trace export when the environment asks for one; flush it with
/// [`TraceExport::shutdown`] before the process exits.
pub struct TraceExport {
    provider: SdkTracerProvider,
}

fn configured(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

/// Why traces cannot be exported as the environment asks.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// A protocol other than OTLP/HTTP was asked for.
    #[error(
        "OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: surql exports traces over OTLP/HTTP (http/protobuf); point OTEL_EXPORTER_OTLP_ENDPOINT at the collector's HTTP port (4318)"
    )]
    Protocol {
        /// The protocol asked for.
        protocol: String,
    },
    /// The exporter could not be built from the environment.
    #[error("cannot export traces to OTEL_EXPORTER_OTLP_ENDPOINT: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

impl TraceExport {
    /// A `tracing` layer exporting surql's spans, when
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`) is set and
    /// `OTEL_SDK_DISABLED` is not `true`.
    pub fn from_env<S>() -> Result<Option<(Self, impl Layer<S>)>, TraceError>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        let endpoint_set =
            configured("OTEL_EXPORTER_OTLP_ENDPOINT") || configured("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
        if !endpoint_set || disabled {
            return Ok(None);
        }
        let protocol = std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .unwrap_or_default();
        if !matches!(protocol.as_str(), "" | "http/protobuf") {
            return Err(TraceError::Protocol { protocol });
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(EXPORT_TIMEOUT))
            .build()
            .into();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(UreqClient(agent))
            .with_timeout(EXPORT_TIMEOUT)
            .build()?;
        let mut resource = opentelemetry_sdk::Resource::builder();
        if !configured("OTEL_SERVICE_NAME") {
            resource = resource.with_service_name("surql");
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        let layer = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("surql"))
            .with_filter(tracing_subscriber::filter::Targets::new().with_target("surql", tracing::Level::INFO));
        Ok(Some((Self { provider }, layer)))
    }

    /// Sends the spans not sent yet (waiting at most the export timeout).
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            eprintln!("warning: traces not all exported: {error}");
        }
    }
}
