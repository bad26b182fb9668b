//! The live dashboard `pagekv run` draws when stdout is a terminal: the reference report's
//! monitoring panel for the scenario in progress (KV use as a bar, hit rate, evictions,
//! throughput, active and waiting requests, the longest sequence, the mean batch, a status
//! line with the alerts firing) and the progress through the scenarios. Drawn with indicatif
//! on stdout and cleared before the final table; each finished scenario leaves one line above.

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use pagekv::engine::Progress;
use pagekv::engine::alerts::{Level, Metric};
use pagekv::report::suite::SuiteObserver;
use pagekv::report::{ScenarioResult, table};
use pagekv::scenario::ScaledScenario;

/// Seconds over which the dashboard's token rate and mean batch are measured.
const RATE_WINDOW_S: f64 = 0.5;

/// The dashboard's rows.
pub struct Dashboard {
    multi: MultiProgress,
    suite: ProgressBar,
    requests: ProgressBar,
    kv: ProgressBar,
    stats: ProgressBar,
    queue: ProgressBar,
    status: ProgressBar,
    /// (seconds, tokens, steps, batch items) at the start of the rate window.
    window: (f64, u64, u64, u64),
    rate: (f64, f64),
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("█▓░")
}

impl Dashboard {
    /// A dashboard for a run of `scenarios` scenarios, drawn on stdout.
    pub fn new(scenarios: usize) -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let suite = multi.add(ProgressBar::new(scenarios as u64));
        suite.set_style(style("scenarios [{bar:24}] {pos}/{len} {wide_msg}"));
        let requests = multi.add(ProgressBar::new(1));
        requests.set_style(style("requests  [{bar:24}] {pos}/{len} {wide_msg}"));
        let kv = multi.add(ProgressBar::new(100));
        kv.set_style(style("KV use    [{bar:24}] {pos:>3}% (alerts at 70/80/90)"));
        let stats = multi.add(ProgressBar::new_spinner());
        stats.set_style(style("{msg}"));
        let queue = multi.add(ProgressBar::new_spinner());
        queue.set_style(style("{msg}"));
        let status = multi.add(ProgressBar::new_spinner());
        status.set_style(style("{msg}"));
        for bar in [&suite, &requests, &kv, &stats, &queue, &status] {
            bar.enable_steady_tick(Duration::from_millis(250));
        }
        Self {
            multi,
            suite,
            requests,
            kv,
            stats,
            queue,
            status,
            window: (0.0, 0, 0, 0),
            rate: (0.0, 0.0),
        }
    }

    /// Clears the dashboard (before the final table is printed).
    pub fn clear(&self) {
        for bar in [
            &self.status,
            &self.queue,
            &self.stats,
            &self.kv,
            &self.requests,
            &self.suite,
        ] {
            bar.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}

/// The status line: the most serious level firing, and every alert at it or below.
fn status_line(alerts: &[Option<Level>; 4], sample_pct: &[(Metric, f64); 4]) -> String {
    let worst = alerts.iter().flatten().max();
    let firing: Vec<String> = Metric::ALL
        .iter()
        .zip(alerts)
        .zip(sample_pct)
        .filter_map(|((m, level), (_, value))| {
            level.map(|l| match value.is_finite() {
                true => format!("{} {value:.0} ({l})", m.name()),
                false => format!("{} ({l})", m.name()),
            })
        })
        .collect();
    match worst {
        None => "status OK: no alert firing".to_string(),
        Some(level) => format!(
            "status {}: {}",
            level.to_string().to_uppercase(),
            firing.join(", ")
        ),
    }
}

impl SuiteObserver for Dashboard {
    fn scenario_started(&mut self, s: &ScaledScenario, index: usize, _total: usize) {
        self.suite.set_position(index as u64);
        self.suite.set_message(format!("{:02} {}", s.id, s.name));
        self.requests.reset();
        self.requests.set_length(s.requests());
        self.requests.set_position(0);
        self.kv.set_position(0);
        self.window = (0.0, 0, 0, 0);
        self.rate = (0.0, 0.0);
    }

    fn step(&mut self, p: Progress) {
        let s = p.sample;
        self.requests.set_position(p.finished);
        self.requests
            .set_message(format!("step {}, {} preempted", p.steps, p.preemptions));
        self.kv
            .set_position(s.kv_use_pct.round().clamp(0.0, 100.0) as u64);
        let (t0, n0, steps0, items0) = self.window;
        if s.seconds - t0 >= RATE_WINDOW_S || t0 == 0.0 {
            let dt = s.seconds - t0;
            if dt > 0.0 {
                let steps = s.step.saturating_sub(steps0).max(1) as f64;
                self.rate = (
                    s.tokens.saturating_sub(n0) as f64 / dt,
                    s.batch_items.saturating_sub(items0) as f64 / steps,
                );
            }
            self.window = (s.seconds, s.tokens, s.step, s.batch_items);
        }
        let pct = |a: u64, b: u64| {
            if b > 0 {
                100.0 * a as f64 / b as f64
            } else {
                0.0
            }
        };
        let hit = pct(s.prefix_hit_tokens, s.prefix_lookup_tokens);
        let evictions = pct(s.evicted_blocks, s.blocks_allocated);
        self.stats.set_message(format!(
            "hit rate {hit:.1}% | evictions {evictions:.1}% | throughput {:.0} tok/s",
            self.rate.0
        ));
        self.queue.set_message(format!(
            "active {} | waiting {} | max seq {} | mean batch {:.1}",
            s.running, s.waiting, p.max_sequence_len, self.rate.1
        ));
        let values = [
            (Metric::KvUse, s.kv_use_pct),
            (Metric::HitRate, hit),
            (Metric::Evictions, evictions),
            (Metric::ThroughputDrop, f64::NAN),
        ];
        self.status.set_message(status_line(&p.alerts, &values));
    }

    fn scenario_finished(&mut self, result: &ScenarioResult) {
        self.suite.inc(1);
        let _ = self.multi.println(table::one_line(result));
    }
}
