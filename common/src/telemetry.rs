//! Structured logs and traces.
//!
//! Logs are `tracing` events with fields (`error = %err`, `table`, `partition`), lowercase
//! messages without a trailing period; `TASCOMI_LOG_FORMAT=json` switches to JSON lines for
//! CloudWatch; `RUST_LOG` filters (default `info`). Each message is handled in an OpenTelemetry
//! span whose parent is the trace context that came with the message (W3C `traceparent` in the
//! queue's message attributes), and the context goes on with the next stage's message, so one
//! night's run of one table is one trace across the four services. Spans are exported over OTLP
//! when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

use std::collections::{BTreeMap, HashMap};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::Env;

/// Keeps the trace exporter alive; flushes it when dropped.
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// Installs logging and tracing for a service. Call once, at start-up.
pub fn init(env: &Env, service: &'static str) -> anyhow::Result<TelemetryGuard> {
    let mut builder = SdkTracerProvider::builder().with_resource(
        opentelemetry_sdk::Resource::builder()
            .with_service_name(service)
            .build(),
    );
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
        // The exporter reads its endpoint and headers from the standard OTEL_* variables.
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    let tracer = provider.tracer(service);
    let filter = EnvFilter::try_new(env.get("RUST_LOG").unwrap_or("info"))?;
    let otel = tracing_opentelemetry::layer().with_tracer(tracer);
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    if env.get("TASCOMI_LOG_FORMAT") == Some("json") {
        crate::metrics::enable_emf_output();
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true),
            )
            .try_init()?;
    } else {
        registry
            .with(tracing_subscriber::fmt::layer().with_target(false))
            .try_init()?;
    }
    Ok(TelemetryGuard { provider })
}

const TRACE_KEYS: [&str; 2] = ["traceparent", "tracestate"];

/// Makes the trace context in `attributes` (if any) the parent of `span`.
pub fn set_parent_from(span: &tracing::Span, attributes: &BTreeMap<String, String>) {
    let carrier: HashMap<String, String> = attributes
        .iter()
        .filter(|(k, _)| TRACE_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if carrier.is_empty() {
        return;
    }
    let context = TraceContextPropagator::new().extract(&carrier);
    // Fails only when no OpenTelemetry layer is installed (unit tests); nothing to link then.
    let _ = span.set_parent(context);
}

/// The trace attributes for messages sent while handling a message that came with `incoming`:
/// the current span's context when traces are recorded, else the incoming context unchanged.
pub fn outgoing_attributes(incoming: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut carrier: HashMap<String, String> = HashMap::new();
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    if carrier.is_empty() {
        return incoming
            .iter()
            .filter(|(k, _)| TRACE_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
    }
    carrier.into_iter().collect()
}
