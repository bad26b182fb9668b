//! How `pagekv run` shows its progress: the live dashboard, progress bars with one line per
//! scenario, or nothing (`--quiet`), plus the live Prometheus metrics when asked for.

use indicatif::{ProgressBar, ProgressStyle};
use pagekv::engine::Progress;
use pagekv::report::live_metrics::LiveMetrics;
use pagekv::report::suite::SuiteObserver;
use pagekv::report::{ScenarioResult, table};
use pagekv::scenario::ScaledScenario;

use super::dashboard::Dashboard;

/// A progress bar per scenario on stderr (hidden when stderr is not a terminal), and one
/// summary line per finished scenario.
#[derive(Default)]
pub(crate) struct Bars {
    bar: Option<ProgressBar>,
}

/// How a run shows its progress.
pub(super) enum Display {
    /// The live dashboard (stdout is a terminal).
    Dashboard(Dashboard),
    /// A progress bar on stderr when it is a terminal, and one line per scenario.
    Lines(Bars),
    /// Nothing until the final table (`--quiet`).
    Quiet,
}

/// The progress display plus, when asked for, the live Prometheus metrics.
pub(super) struct Observers {
    pub(super) display: Display,
    pub(super) metrics: Option<LiveMetrics>,
}

impl Observers {
    fn display(&mut self) -> Option<&mut dyn SuiteObserver> {
        match &mut self.display {
            Display::Dashboard(d) => Some(d),
            Display::Lines(b) => Some(b),
            Display::Quiet => None,
        }
    }
}

impl SuiteObserver for Observers {
    fn scenario_started(&mut self, s: &ScaledScenario, index: usize, total: usize) {
        if let Some(d) = self.display() {
            d.scenario_started(s, index, total);
        }
        if let Some(m) = &mut self.metrics {
            m.scenario_started(s, index, total);
        }
    }

    fn step(&mut self, p: Progress) {
        if let Some(m) = &mut self.metrics {
            m.step(p.clone());
        }
        if let Some(d) = self.display() {
            d.step(p);
        }
    }

    fn scenario_finished(&mut self, result: &ScenarioResult) {
        if let Some(d) = self.display() {
            d.scenario_finished(result);
        }
        if let Some(m) = &mut self.metrics {
            m.scenario_finished(result);
        }
    }
}

impl SuiteObserver for Bars {
    fn scenario_started(&mut self, s: &ScaledScenario, index: usize, total: usize) {
        let bar = ProgressBar::new(s.requests());
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} requests {msg} ({elapsed})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("[{}/{total}] {:02} {}", index + 1, s.id, s.name));
        self.bar = Some(bar);
    }

    fn step(&mut self, p: Progress) {
        if let Some(bar) = &self.bar {
            bar.set_position(p.finished);
            bar.set_message(format!("step {}, {} preemptions", p.steps, p.preemptions));
        }
    }

    fn scenario_finished(&mut self, result: &ScenarioResult) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        eprintln!("{}", table::one_line(result));
    }
}
