//! Traces (OpenTelemetry, exported over OTLP/HTTP when the node is given an endpoint): one
//! trace per execution. The event's acceptance is the `ingress` span (a child of the
//! caller's span when the webhook came with a W3C `traceparent`); each run of the execution
//! is an `execution` span under it, with a span per step attempt (kind, status, retry
//! number) and one for the commit that ends it. Steps that call out send `traceparent`, so
//! the target's spans join the trace under the step's attempt.
//!
//! The trace outlives any one node: the ingress span's `traceparent` is stored with the
//! execution (`executions.traceparent`), so a run resumed elsewhere, or after a restart,
//! joins the same trace, and the API shows its id. Without an endpoint no span is made or
//! sent; executions still get a trace id (the caller's, else a random one) to relay.

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{SdkTracerProvider, Tracer};
use std::borrow::Cow;

/// Where spans go, if anywhere.
#[derive(Default)]
pub struct Traces {
    exporting: Option<(SdkTracerProvider, Tracer)>,
}

impl std::fmt::Debug for Traces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Traces").field("exporting", &self.exporting.is_some()).finish()
    }
}

/// A span's place in a trace, as a W3C `traceparent` carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    /// The trace.
    pub trace_id: u128,
    /// The span.
    pub span_id: u64,
    /// Whether the caller records it.
    pub sampled: bool,
}

impl Parent {
    /// Reads a `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`); none when it is not one
    /// (all-zero ids are invalid, as the spec says).
    pub fn parse(header: &str) -> Option<Parent> {
        let mut parts = header.trim().split('-');
        let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex =
            |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex(version, 2) || version == "ff" || !hex(trace, 32) || !hex(span, 16) || !hex(flags, 2) {
            return None;
        }
        // A later version may add fields; version 00 has exactly these.
        if version == "00" && parts.next().is_some() {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok().filter(|t| *t != 0)?;
        let span_id = u64::from_str_radix(span, 16).ok().filter(|s| *s != 0)?;
        let sampled = u8::from_str_radix(flags, 16).ok()? & 1 == 1;
        Some(Parent { trace_id, span_id, sampled })
    }

    /// A new trace's root (no caller): random ids.
    pub fn random() -> Parent {
        Parent { trace_id: rand::random::<u128>().max(1), span_id: rand::random::<u64>().max(1), sampled: true }
    }

    /// As a `traceparent` header.
    pub fn header(&self) -> String {
        format!("00-{:032x}-{:016x}-{:02x}", self.trace_id, self.span_id, u8::from(self.sampled))
    }

    /// The trace id as 32 hex digits.
    pub fn trace_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    fn context(&self) -> Context {
        let flags = if self.sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
        let sc = SpanContext::new(
            TraceId::from(self.trace_id),
            SpanId::from(self.span_id),
            flags,
            true,
            TraceState::default(),
        );
        Context::new().with_remote_span_context(sc)
    }
}

/// A span being recorded (when the node exports).
pub struct Span(opentelemetry_sdk::trace::Span);

impl Span {
    /// Its place, for its children and for `traceparent` headers.
    pub fn parent(&self) -> Parent {
        let sc = self.0.span_context();
        Parent {
            trace_id: u128::from_be_bytes(sc.trace_id().to_bytes()),
            span_id: u64::from_be_bytes(sc.span_id().to_bytes()),
            sampled: sc.is_sampled(),
        }
    }

    /// Adds an attribute.
    pub fn set(&mut self, key: &'static str, value: impl Into<opentelemetry::Value>) {
        self.0.set_attribute(KeyValue::new(key, value));
    }

    /// Marks it failed, with why.
    pub fn fail(&mut self, message: impl Into<Cow<'static, str>>) {
        self.0.set_status(Status::error(message));
    }

    /// Ends it now.
    pub fn end(mut self) {
        self.0.end();
    }
}

impl Traces {
    /// Spans exported over OTLP/HTTP to `endpoint` (`http://collector:4318`, or the full
    /// `…/v1/traces` URL), in batches from a thread of their own; `json` sends OTLP/JSON
    /// rather than protobuf.
    ///
    /// # Errors
    /// The exporter cannot be built (an invalid endpoint).
    pub fn otlp(endpoint: &str, json: bool, service: &str) -> Result<Traces, String> {
        let endpoint = endpoint.trim_end_matches('/');
        let url = if endpoint.ends_with("/v1/traces") { endpoint.to_owned() } else { format!("{endpoint}/v1/traces") };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url)
            .with_protocol(if json { Protocol::HttpJson } else { Protocol::HttpBinary })
            .with_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot export traces to {endpoint}: {e}"))?;
        let resource = opentelemetry_sdk::Resource::builder_empty()
            .with_service_name(service.to_owned())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        // Sent every half second: a trace shows up while people still look for it.
        let batches = opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                opentelemetry_sdk::trace::BatchConfigBuilder::default()
                    .with_scheduled_delay(std::time::Duration::from_millis(500))
                    .build(),
            )
            .build();
        let provider = SdkTracerProvider::builder().with_span_processor(batches).with_resource(resource).build();
        let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "flowgate");
        Ok(Traces { exporting: Some((provider, tracer)) })
    }

    /// Whether spans are recorded.
    pub fn on(&self) -> bool {
        self.exporting.is_some()
    }

    /// Starts a span named `name` under `parent` (a new trace when none); none when the node
    /// does not export.
    pub fn start(
        &self,
        parent: Option<Parent>,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        attributes: Vec<KeyValue>,
    ) -> Option<Span> {
        let (_, tracer) = self.exporting.as_ref()?;
        let cx = parent.map_or_else(Context::new, |p| p.context());
        let span =
            tracer.span_builder(name).with_kind(kind).with_attributes(attributes).start_with_context(tracer, &cx);
        Some(Span(span))
    }
}

impl Drop for Traces {
    fn drop(&mut self) {
        if let Some((provider, _)) = self.exporting.take() {
            let _ = provider.shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Parent;

    #[test]
    fn traceparent_headers_are_read_strictly() {
        let p = Parent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(p.trace_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(p.span_id, 0x00f0_67aa_0ba9_02b7);
        assert!(p.sampled);
        assert_eq!(p.header(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(Parent::parse(bad), None, "{bad}");
        }
        // A later version's extra fields are ignored.
        assert!(Parent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more").is_some());
        let r = Parent::random();
        assert_eq!(Parent::parse(&r.header()), Some(r));
    }
}
