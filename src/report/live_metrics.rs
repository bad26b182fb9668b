//! Live Prometheus metrics of a stress run: a registry updated after every engine step and
//! encoded in the Prometheus text format on demand (the `/metrics` endpoint and the
//! node-exporter textfile of `pagekv run`).
//!
//! Names mirror vLLM's, so dashboards built for it map over, under a `pagekv_` prefix:
//! `kv_cache_usage_perc` (0 to 1, as vLLM's), `prefix_cache_queries_total` and
//! `prefix_cache_hits_total` (tokens), `num_preemptions_total` (labelled by `mode`),
//! `num_requests_running`, `num_requests_waiting`, the `time_to_first_token_seconds` and
//! `inter_token_latency_seconds` histograms, and `alerts` (per `metric`: 0 none, 1 caution,
//! 2 warning, 3 critical). Every series carries `scenario`, `model`, `adapter` and `backend`
//! labels, so a run's scenarios stay apart.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::ScenarioResult;
use super::file::write_atomic;
use super::suite::SuiteObserver;
use crate::engine::Progress;
use crate::engine::alerts::{Level, Metric};
use crate::engine::request::PreemptionMode;
use crate::engine::series::Sample;
use crate::scenario::ScaledScenario;

type Labels = Vec<(String, String)>;

/// vLLM's TTFT buckets, seconds.
fn ttft_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
        20.0, 40.0, 80.0, 160.0,
    ])
}

/// vLLM's inter-token latency buckets, seconds.
fn itl_histogram() -> Histogram {
    Histogram::new([
        0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
        20.0, 40.0, 80.0,
    ])
}

/// The registry's metric families.
#[derive(Clone)]
struct Families {
    kv_usage: Family<Labels, Gauge<f64, AtomicU64>>,
    queries: Family<Labels, Counter>,
    hits: Family<Labels, Counter>,
    preemptions: Family<Labels, Counter>,
    running: Family<Labels, Gauge>,
    waiting: Family<Labels, Gauge>,
    ttft: Family<Labels, Histogram, fn() -> Histogram>,
    itl: Family<Labels, Histogram, fn() -> Histogram>,
    alerts: Family<Labels, Gauge>,
}

/// The metrics of one run, updated as an observer of the suite.
pub struct LiveMetrics {
    registry: Arc<Registry>,
    families: Families,
    adapter: String,
    backend: String,
    mode: &'static str,
    labels: Labels,
    last: Sample,
    file: Option<PathBuf>,
    last_write: Option<Instant>,
    /// The first error writing the metrics file, if any (the run goes on without it).
    pub file_error: Option<String>,
}

impl LiveMetrics {
    /// Metrics for a run on `adapter` (`backend`) preempting by `mode`, also written to
    /// `file` (atomically, at most once a second) when given.
    pub fn new(adapter: &str, backend: &str, mode: PreemptionMode, file: Option<PathBuf>) -> Self {
        let mut registry = Registry::with_prefix("pagekv");
        let families = Families {
            kv_usage: Family::default(),
            queries: Family::default(),
            hits: Family::default(),
            preemptions: Family::default(),
            running: Family::default(),
            waiting: Family::default(),
            ttft: Family::new_with_constructor(ttft_histogram),
            itl: Family::new_with_constructor(itl_histogram),
            alerts: Family::default(),
        };
        let f = families.clone();
        registry.register(
            "kv_cache_usage_perc",
            "KV-cache usage: blocks the step held over the budget; 1 means 100 percent",
            f.kv_usage,
        );
        registry.register(
            "prefix_cache_queries",
            "Prompt tokens looked up in the prefix cache",
            f.queries,
        );
        registry.register(
            "prefix_cache_hits",
            "Prompt tokens served from the prefix cache",
            f.hits,
        );
        registry.register(
            "num_preemptions",
            "Cumulative preemptions, by mode",
            f.preemptions,
        );
        registry.register(
            "num_requests_running",
            "Requests holding KV blocks",
            f.running,
        );
        registry.register(
            "num_requests_waiting",
            "Requests queued for admission, swapped out included",
            f.waiting,
        );
        registry.register(
            "time_to_first_token_seconds",
            "Time to first token (all requests arrive when the scenario starts)",
            f.ttft,
        );
        registry.register(
            "inter_token_latency_seconds",
            "Time between a request's consecutive tokens",
            f.itl,
        );
        registry.register(
            "alerts",
            "Alert level per metric: 0 none, 1 caution, 2 warning, 3 critical",
            f.alerts,
        );
        Self {
            registry: Arc::new(registry),
            families,
            adapter: adapter.to_string(),
            backend: backend.to_string(),
            mode: mode.name(),
            labels: Vec::new(),
            last: Sample::default(),
            file,
            last_write: None,
            file_error: None,
        }
    }

    /// The registry, to serve from another thread.
    pub fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.registry)
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        encode_registry(&self.registry)
    }

    fn with(&self, key: &str, value: &str) -> Labels {
        let mut labels = self.labels.clone();
        labels.push((key.to_string(), value.to_string()));
        labels
    }

    fn write_file(&mut self, force: bool) {
        let Some(path) = &self.file else { return };
        if !force
            && self
                .last_write
                .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.last_write = Some(Instant::now());
        if let Err(e) = write_atomic(path, self.encode().as_bytes()) {
            self.file_error
                .get_or_insert_with(|| format!("{}: {e}", path.display()));
        }
    }

    /// Writes the metrics file one last time (call when the run ends).
    pub fn finish(&mut self) {
        self.write_file(true);
    }
}

/// `registry` in the Prometheus text format.
pub fn encode_registry(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut text, registry);
    text
}

impl SuiteObserver for LiveMetrics {
    fn scenario_started(&mut self, s: &ScaledScenario, _index: usize, _total: usize) {
        self.labels = vec![
            ("scenario".into(), format!("{:02}", s.id)),
            ("model".into(), s.layout.geometry.name.clone()),
            ("adapter".into(), self.adapter.clone()),
            ("backend".into(), self.backend.clone()),
        ];
        self.last = Sample::default();
        let f = &self.families;
        f.kv_usage.get_or_create(&self.labels).set(0.0);
        // Counters appear at 0 from the scenario's start, not at their first increment.
        f.queries.get_or_create(&self.labels).inc_by(0);
        f.hits.get_or_create(&self.labels).inc_by(0);
        f.preemptions
            .get_or_create(&self.with("mode", self.mode))
            .inc_by(0);
        f.running.get_or_create(&self.labels).set(0);
        f.waiting.get_or_create(&self.labels).set(0);
        // Histograms too, so every family is in the exposition from the first scrape.
        drop(f.ttft.get_or_create(&self.labels));
        drop(f.itl.get_or_create(&self.labels));
        for metric in Metric::ALL {
            f.alerts
                .get_or_create(&self.with("metric", metric.key()))
                .set(0);
        }
    }

    fn step(&mut self, p: Progress) {
        let s = p.sample;
        let f = &self.families;
        let l = &self.labels;
        f.kv_usage.get_or_create(l).set(s.kv_use_pct / 100.0);
        let delta = |now: u64, before: u64| now.saturating_sub(before);
        f.queries.get_or_create(l).inc_by(delta(
            s.prefix_lookup_tokens,
            self.last.prefix_lookup_tokens,
        ));
        f.hits
            .get_or_create(l)
            .inc_by(delta(s.prefix_hit_tokens, self.last.prefix_hit_tokens));
        f.preemptions
            .get_or_create(&self.with("mode", self.mode))
            .inc_by(delta(s.preemptions, self.last.preemptions));
        f.running.get_or_create(l).set(s.running as i64);
        f.waiting.get_or_create(l).set(s.waiting as i64);
        for t in &p.first_token_seconds {
            f.ttft.get_or_create(l).observe(*t);
        }
        for t in &p.inter_token_seconds {
            f.itl.get_or_create(l).observe(*t);
        }
        for (metric, level) in Metric::ALL.into_iter().zip(p.alerts) {
            let value = match level {
                None => 0,
                Some(Level::Caution) => 1,
                Some(Level::Warning) => 2,
                Some(Level::Critical) => 3,
            };
            f.alerts
                .get_or_create(&self.with("metric", metric.key()))
                .set(value);
        }
        self.last = s;
        self.write_file(false);
    }

    fn scenario_finished(&mut self, _result: &ScenarioResult) {
        self.write_file(true);
    }
}
