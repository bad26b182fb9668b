//! Alerts on the reference report's monitoring thresholds, evaluated on the live values after
//! every engine step: KV use, prefix-cache hit rate, evictions and throughput.
//!
//! The defaults are the report's: KV use 70% (caution), 80% (warning), 90% (critical); hit
//! rate below 80% (warning) and 70% (critical); evictions above 30% (warning) and 50%
//! (critical); throughput more than 10% (warning) and 20% (critical) below the baseline. A
//! TOML file overrides any of them ([`AlertRules::parse`]). Hit rate and evictions are the
//! report's own readings (cumulative hits over lookups, evictions over blocks allocated), not
//! the share-of-possible-hits reading `status` uses. The throughput baseline is the scenario's
//! own first steady window: the token rate over steps `window + 1 ..= 2 * window` (the first
//! `window` steps are admission ramp-up); each later window of `window` steps is compared with
//! it, so a scenario shorter than `2 * window` steps raises no throughput alert.
//!
//! An alert is information, never a failure: a run's verdict does not look at it.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::series::Sample;

/// How serious a crossed threshold is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// The report's "caution" (KV use only).
    Caution,
    /// The report's "warning".
    Warning,
    /// The report's "critical".
    Critical,
}

/// What an alert watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// KV blocks in use, % of the pool.
    KvUse,
    /// Prompt tokens served from the prefix cache, % of those looked up.
    HitRate,
    /// Blocks evicted while still needed, % of blocks allocated.
    Evictions,
    /// How far the recent token rate is below the baseline, %.
    ThroughputDrop,
}

impl Metric {
    /// Every metric, in the order [`AlertMonitor::levels`] reports them.
    pub const ALL: [Metric; 4] = [
        Metric::KvUse,
        Metric::HitRate,
        Metric::Evictions,
        Metric::ThroughputDrop,
    ];

    /// The key used in alerts files and as a Prometheus label.
    pub fn key(self) -> &'static str {
        match self {
            Metric::KvUse => "kv_use",
            Metric::HitRate => "hit_rate",
            Metric::Evictions => "evictions",
            Metric::ThroughputDrop => "throughput_drop",
        }
    }

    /// The name printed in alert lists.
    pub fn name(self) -> &'static str {
        match self {
            Metric::KvUse => "kv use %",
            Metric::HitRate => "hit rate %",
            Metric::Evictions => "evictions %",
            Metric::ThroughputDrop => "throughput drop %",
        }
    }

    /// Whether the alert fires below its thresholds (hit rate) rather than above.
    fn fires_below(self) -> bool {
        self == Metric::HitRate
    }
}

/// The thresholds of one metric; a level left out never fires.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Caution threshold, %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caution: Option<f64>,
    /// Warning threshold, %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<f64>,
    /// Critical threshold, %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<f64>,
}

impl Thresholds {
    fn levels(&self) -> [(Level, Option<f64>); 3] {
        [
            (Level::Caution, self.caution),
            (Level::Warning, self.warning),
            (Level::Critical, self.critical),
        ]
    }

    /// The most serious level `value` reaches, and its threshold.
    fn level_of(&self, value: f64, below: bool) -> Option<(Level, f64)> {
        self.levels().into_iter().rev().find_map(|(level, t)| {
            let t = t?;
            let crossed = if below { value < t } else { value >= t };
            crossed.then_some((level, t))
        })
    }
}

/// Every alert rule. Missing tables in a file keep the report's defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertRules {
    /// KV use, % of the pool; fires at or above.
    pub kv_use_pct: Thresholds,
    /// Hit rate, %; fires below.
    pub hit_rate_pct: Thresholds,
    /// Evictions, % of blocks allocated; fires at or above.
    pub evictions_pct: Thresholds,
    /// Throughput below the baseline, %; fires at or above.
    pub throughput_drop_pct: Thresholds,
    /// Steps per throughput window (the baseline is the second window).
    pub throughput_window_steps: u32,
}

impl Default for AlertRules {
    /// The reference report's thresholds, and 16-step throughput windows.
    fn default() -> Self {
        let t = |caution, warning, critical| Thresholds {
            caution,
            warning,
            critical,
        };
        Self {
            kv_use_pct: t(Some(70.0), Some(80.0), Some(90.0)),
            hit_rate_pct: t(None, Some(80.0), Some(70.0)),
            evictions_pct: t(None, Some(30.0), Some(50.0)),
            throughput_drop_pct: t(None, Some(10.0), Some(20.0)),
            throughput_window_steps: 16,
        }
    }
}

/// Why an alerts file was refused: one sentence naming the file and key.
#[derive(Debug, thiserror::Error)]
#[error("`{path}`: {message}")]
pub struct AlertFileError {
    /// The file.
    pub path: String,
    /// What is wrong, naming the key.
    pub message: String,
}

impl AlertRules {
    /// Reads and checks an alerts file.
    pub fn load(path: &Path) -> Result<Self, AlertFileError> {
        let text = std::fs::read_to_string(path).map_err(|e| AlertFileError {
            path: path.display().to_string(),
            message: format!("cannot read it ({e})"),
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks alerts-file text (`path` is for messages): every threshold between
    /// 0 and 100, ordered by level (rising for metrics that fire above, falling for hit rate).
    pub fn parse(text: &str, path: &Path) -> Result<Self, AlertFileError> {
        let fail = |message: String| AlertFileError {
            path: path.display().to_string(),
            message,
        };
        let rules: AlertRules =
            toml::from_str(text).map_err(|e| fail(e.message().trim_end_matches('.').into()))?;
        for (key, metric, t) in rules.tables() {
            let set: Vec<(Level, f64)> = t
                .levels()
                .into_iter()
                .filter_map(|(l, v)| v.map(|v| (l, v)))
                .collect();
            for &(level, v) in &set {
                if !(0.0..=100.0).contains(&v) {
                    return Err(fail(format!(
                        "`{key}.{}` is {v}, but a threshold is a % from 0 to 100",
                        level.key()
                    )));
                }
            }
            for pair in set.windows(2) {
                let ((lo, a), (hi, b)) = (pair[0], pair[1]);
                let ordered = if metric.fires_below() { a >= b } else { a <= b };
                if !ordered {
                    return Err(fail(format!(
                        "`{key}.{}` ({b}) must be {} `{key}.{}` ({a})",
                        hi.key(),
                        if metric.fires_below() {
                            "at most"
                        } else {
                            "at least"
                        },
                        lo.key()
                    )));
                }
            }
        }
        if rules.throughput_window_steps == 0 {
            return Err(fail(
                "`throughput_window_steps` is 0, but a window holds at least 1 step".into(),
            ));
        }
        Ok(rules)
    }

    fn tables(&self) -> [(&'static str, Metric, &Thresholds); 4] {
        [
            ("kv_use_pct", Metric::KvUse, &self.kv_use_pct),
            ("hit_rate_pct", Metric::HitRate, &self.hit_rate_pct),
            ("evictions_pct", Metric::Evictions, &self.evictions_pct),
            (
                "throughput_drop_pct",
                Metric::ThroughputDrop,
                &self.throughput_drop_pct,
            ),
        ]
    }
}

impl Level {
    fn key(self) -> &'static str {
        match self {
            Level::Caution => "caution",
            Level::Warning => "warning",
            Level::Critical => "critical",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// An alert firing (its metric reached a more serious level) or clearing (it fell back below
/// the level it had reached).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// The step after which it was evaluated.
    pub step: u64,
    /// Seconds since the scenario's clock started.
    pub seconds: f64,
    /// The metric.
    pub metric: Metric,
    /// Its live value, %.
    pub value: f64,
    /// The threshold crossed, %.
    pub threshold: f64,
    /// The level that fired, or that cleared.
    pub level: Level,
    /// True when firing, false when clearing.
    pub fired: bool,
}

impl fmt::Display for AlertEvent {
    /// E.g. `step 12 (0.35 s): kv use % 81.2 reached warning (80)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "step {} ({:.2} s): {} {:.1} {} {} ({})",
            self.step,
            self.seconds,
            self.metric.name(),
            self.value,
            if self.fired { "reached" } else { "cleared" },
            self.level,
            self.threshold
        )
    }
}

/// Most events a scenario records; later ones are counted, not kept.
pub const MAX_EVENTS: usize = 200;

/// Evaluates the rules after every step and records level changes.
#[derive(Clone, Debug)]
pub struct AlertMonitor {
    rules: AlertRules,
    state: [Option<Level>; 4],
    /// (step, seconds, tokens) at the start of the current throughput window.
    window_start: (u64, f64, u64),
    baseline_tokens_per_s: Option<f64>,
    /// Events recorded so far (at most [`MAX_EVENTS`]).
    pub events: Vec<AlertEvent>,
    /// Events past [`MAX_EVENTS`], counted only.
    pub dropped: u64,
}

impl AlertMonitor {
    /// A monitor with nothing firing.
    pub fn new(rules: AlertRules) -> Self {
        Self {
            rules,
            state: [None; 4],
            window_start: (0, 0.0, 0),
            baseline_tokens_per_s: None,
            events: Vec::new(),
            dropped: 0,
        }
    }

    /// The most serious level firing now, if any.
    pub fn worst(&self) -> Option<Level> {
        self.state.iter().flatten().max().copied()
    }

    /// The level each metric is at now, in [`Metric::ALL`] order.
    pub fn levels(&self) -> [Option<Level>; 4] {
        self.state
    }

    /// The token rate throughput alerts compare against, once measured.
    pub fn baseline_tokens_per_s(&self) -> Option<f64> {
        self.baseline_tokens_per_s
    }

    /// Evaluates every rule on the state after a step; returns how many events it added.
    pub fn observe(&mut self, s: &Sample) -> usize {
        let before = self.events.len() as u64 + self.dropped;
        let pct = |a: u64, b: u64| (b > 0).then(|| 100.0 * a as f64 / b as f64);
        self.check(s, 0, Some(s.kv_use_pct));
        self.check(s, 1, pct(s.prefix_hit_tokens, s.prefix_lookup_tokens));
        self.check(s, 2, pct(s.evicted_blocks, s.blocks_allocated));
        let drop = self.throughput_drop(s);
        if drop.is_some() {
            self.check(s, 3, drop);
        }
        (self.events.len() as u64 + self.dropped - before) as usize
    }

    /// At the end of each window: the window's rate, and the % it is below the baseline.
    fn throughput_drop(&mut self, s: &Sample) -> Option<f64> {
        let window = self.rules.throughput_window_steps.max(1) as u64;
        if s.step < self.window_start.0 + window {
            return None;
        }
        let (_, t0, n0) = self.window_start;
        self.window_start = (s.step, s.seconds, s.tokens);
        let seconds = s.seconds - t0;
        if seconds <= 0.0 {
            return None;
        }
        let rate = s.tokens.saturating_sub(n0) as f64 / seconds;
        if s.step < 2 * window {
            return None; // the ramp-up window
        }
        match self.baseline_tokens_per_s {
            None => {
                self.baseline_tokens_per_s = Some(rate);
                None
            }
            Some(base) if base > 0.0 => Some((100.0 * (1.0 - rate / base)).max(0.0)),
            Some(_) => None,
        }
    }

    fn check(&mut self, s: &Sample, index: usize, value: Option<f64>) {
        let Some(value) = value else { return };
        let (metric, thresholds) = {
            let (_, metric, t) = self.rules.tables()[index];
            (metric, *t)
        };
        let now = thresholds.level_of(value, metric.fires_below());
        let was = self.state[index];
        if now.map(|(l, _)| l) == was {
            return;
        }
        self.state[index] = now.map(|(l, _)| l);
        let rising = match (was, now) {
            (_, Some((level, threshold))) if was.is_none_or(|w| level > w) => {
                Some((level, threshold))
            }
            _ => None,
        };
        let event = match (rising, was) {
            (Some((level, threshold)), _) => AlertEvent {
                step: s.step,
                seconds: s.seconds,
                metric,
                value,
                threshold,
                level,
                fired: true,
            },
            (None, Some(level)) => AlertEvent {
                step: s.step,
                seconds: s.seconds,
                metric,
                value,
                threshold: thresholds.levels()[level as usize].1.unwrap_or(f64::NAN),
                level,
                fired: false,
            },
            (None, None) => return,
        };
        if self.events.len() < MAX_EVENTS {
            self.events.push(event);
        } else {
            self.dropped += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(step: u64, kv_use_pct: f64) -> Sample {
        Sample {
            step,
            seconds: step as f64,
            kv_use_pct,
            tokens: step * 100,
            ..Sample::default()
        }
    }

    #[test]
    fn kv_use_fires_each_level_once_and_clears() {
        let mut m = AlertMonitor::new(AlertRules::default());
        for (step, use_pct) in [(1, 50.0), (2, 75.0), (3, 79.0), (4, 92.0), (5, 60.0)] {
            m.observe(&at(step, use_pct));
        }
        let got: Vec<(u64, Level, bool)> = m
            .events
            .iter()
            .map(|e| (e.step, e.level, e.fired))
            .collect();
        assert_eq!(
            got,
            [
                (2, Level::Caution, true),
                (4, Level::Critical, true),
                (5, Level::Critical, false)
            ]
        );
        assert_eq!(m.events[1].threshold, 90.0);
        assert_eq!(m.worst(), None);
        assert!(
            m.events[0]
                .to_string()
                .contains("kv use % 75.0 reached caution (70)")
        );
    }

    #[test]
    fn throughput_compares_each_window_with_the_second() {
        let rules = AlertRules {
            throughput_window_steps: 2,
            ..AlertRules::default()
        };
        let mut m = AlertMonitor::new(rules);
        // 100 tokens per step, one second per step, until step 6; then half the rate.
        let mut tokens = 0;
        for step in 1..=10u64 {
            tokens += if step <= 6 { 100 } else { 50 };
            let s = Sample {
                step,
                seconds: step as f64,
                tokens,
                ..Sample::default()
            };
            m.observe(&s);
        }
        assert_eq!(m.baseline_tokens_per_s(), Some(100.0));
        let drops: Vec<_> = m
            .events
            .iter()
            .filter(|e| e.metric == Metric::ThroughputDrop)
            .collect();
        assert_eq!(drops.len(), 1, "{:?}", m.events);
        assert_eq!((drops[0].step, drops[0].level), (8, Level::Critical));
        assert!((drops[0].value - 50.0).abs() < 1e-9);
    }

    #[test]
    fn a_file_overrides_and_bad_files_name_the_key() {
        let path = Path::new("alerts.toml");
        let rules = AlertRules::parse("[kv_use_pct]\ncaution = 60\n", path).unwrap();
        assert_eq!(rules.kv_use_pct.caution, Some(60.0));
        assert_eq!(rules.kv_use_pct.warning, None);
        assert_eq!(rules.evictions_pct, AlertRules::default().evictions_pct);
        for (text, needle) in [
            (
                "[kv_use_pct]\nwarning = 120\n",
                "`kv_use_pct.warning` is 120",
            ),
            (
                "[kv_use_pct]\nwarning = 90\ncritical = 80\n",
                "`kv_use_pct.critical` (80) must be at least",
            ),
            (
                "[hit_rate_pct]\nwarning = 60\ncritical = 70\n",
                "`hit_rate_pct.critical` (70) must be at most",
            ),
            ("[kv_use]\nwarning = 80\n", "unknown field `kv_use`"),
            (
                "throughput_window_steps = 0\n",
                "`throughput_window_steps` is 0",
            ),
        ] {
            let e = AlertRules::parse(text, path).unwrap_err().to_string();
            assert!(e.starts_with("`alerts.toml`: "), "{e}");
            assert!(e.contains(needle), "{needle}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }
}
