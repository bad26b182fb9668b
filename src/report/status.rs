//! Verdicts: the reference report's own safe / warning / danger thresholds applied to measured
//! values, and FAIL whenever a request was lost, rejected or wrong.
//!
//! Two readings differ from a literal copy of the report's table, because the code showed the
//! literal one cannot mean anything here (the README says the same):
//!
//! - "KV Cache Utilization" is applied to the measured **peak use %** (what the pool really
//!   held), not to demand %: demand over 100% is served by queueing and preemption, and
//!   their cost shows in peak use, evictions and preemptions.
//! - "Cache Hit Rate" is applied to hits **as a share of what could hit** (hit rate / possible
//!   hit rate): a workload whose prompts share 25% can never reach the report's 85%, and a
//!   perfect cache should not be rated "danger" for that.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::engine::Measurement;
use crate::scenario::{ReferenceResult, ReferenceStatus};

/// A metric's range in the report's "Safe Operating Range" table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Band {
    /// Safe range.
    Safe,
    /// Warning range.
    Warning,
    /// Danger range.
    Danger,
}

/// A scenario's overall verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Correct, every metric in the safe range.
    Pass,
    /// Correct, the worst metric in the warning range.
    Warning,
    /// Correct, the worst metric in the danger range.
    Danger,
    /// A request was lost, rejected or wrong, or the run stopped with an error.
    Fail,
}

impl Verdict {
    /// Whether every request completed correctly (the reference's PASS).
    pub fn passed(self) -> bool {
        self != Verdict::Fail
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "PASS",
            Verdict::Warning => "PASS (warning)",
            Verdict::Danger => "PASS (danger)",
            Verdict::Fail => "FAIL",
        })
    }
}

/// The report's utilization bands (<60 safe, 60-80 warning, >80 danger), on peak use %.
pub fn utilization_band(peak_use_pct: f64) -> Band {
    match peak_use_pct {
        p if p < 60.0 => Band::Safe,
        p if p <= 80.0 => Band::Warning,
        _ => Band::Danger,
    }
}

/// The report's hit-rate bands (>85 safe, 75-85 warning, <75 danger), on hits as a percentage
/// of possible hits; safe when nothing could hit.
pub fn hit_band(hit_pct: Option<f64>, possible_pct: Option<f64>) -> Band {
    match (hit_pct, possible_pct) {
        (Some(hit), Some(possible)) if possible > 0.0 => match 100.0 * hit / possible {
            e if e > 85.0 => Band::Safe,
            e if e >= 75.0 => Band::Warning,
            _ => Band::Danger,
        },
        _ => Band::Safe,
    }
}

/// The report's eviction bands (0 safe, up to 30 warning, above danger).
pub fn eviction_band(evictions_pct: Option<f64>) -> Band {
    match evictions_pct.unwrap_or(0.0) {
        e if e <= 0.0 => Band::Safe,
        e if e <= 30.0 => Band::Warning,
        _ => Band::Danger,
    }
}

/// The verdict for a measurement, with one short reason per metric outside the safe range
/// (or per problem, for a FAIL).
pub fn verdict(m: &Measurement) -> (Verdict, Vec<String>) {
    if !m.is_correct() {
        let mut reasons = m.problems.clone();
        if let Some(first) = m.rejections.first() {
            reasons.push(format!(
                "{} of {} requests cannot fit the pool even alone ({first})",
                m.rejected, m.requests
            ));
        }
        if m.completed < m.requests && reasons.is_empty() {
            reasons.push(format!(
                "{} of {} requests completed",
                m.completed, m.requests
            ));
        }
        return (Verdict::Fail, reasons);
    }
    let mut worst = Band::Safe;
    let mut reasons = Vec::new();
    let mut note = |band: Band, text: String| {
        if band > Band::Safe {
            reasons.push(format!("{text} ({})", band_name(band)));
        }
        worst = worst.max(band);
    };
    note(
        utilization_band(m.peak_use_pct),
        format!("peak use {:.0}%", m.peak_use_pct),
    );
    note(
        hit_band(m.hit_rate_pct, m.possible_hit_rate_pct),
        format!(
            "hit rate {:.1}% of a possible {:.1}%",
            m.hit_rate_pct.unwrap_or(0.0),
            m.possible_hit_rate_pct.unwrap_or(0.0)
        ),
    );
    note(
        eviction_band(m.evictions_pct),
        format!("evictions {:.1}%", m.evictions_pct.unwrap_or(0.0)),
    );
    let verdict = match worst {
        Band::Safe => Verdict::Pass,
        Band::Warning => Verdict::Warning,
        Band::Danger => Verdict::Danger,
    };
    (verdict, reasons)
}

fn band_name(band: Band) -> &'static str {
    match band {
        Band::Safe => "safe",
        Band::Warning => "warning",
        Band::Danger => "danger",
    }
}

/// A short sentence when pagekv's verdict and the reference's status disagree (PASS against
/// FAIL), or `None` when they agree.
pub fn disagreement(
    reference: &ReferenceResult,
    verdict: Verdict,
    reasons: &[String],
    m: Option<&Measurement>,
) -> Option<String> {
    match (reference.status, verdict.passed(), m) {
        (ReferenceStatus::Fail, true, Some(m)) => Some(format!(
            "the reference says FAIL at {:.1}% utilization; pagekv completed all {} requests by \
             queueing, with {} preemptions and {:.1}% evictions",
            reference.utilization_pct,
            m.requests,
            m.preemptions,
            m.evictions_pct.unwrap_or(0.0)
        )),
        (ReferenceStatus::Pass, false, _) => Some(format!(
            "the reference says PASS; pagekv failed: {}",
            reasons.first().map_or("the run stopped", String::as_str)
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_follow_the_reports_table() {
        assert_eq!(utilization_band(59.9), Band::Safe);
        assert_eq!(utilization_band(70.0), Band::Warning);
        assert_eq!(utilization_band(80.1), Band::Danger);
        assert_eq!(hit_band(Some(20.0), Some(20.0)), Band::Safe);
        assert_eq!(hit_band(Some(16.0), Some(20.0)), Band::Warning);
        assert_eq!(hit_band(Some(0.0), Some(20.0)), Band::Danger);
        assert_eq!(hit_band(Some(0.0), Some(0.0)), Band::Safe);
        assert_eq!(hit_band(None, None), Band::Safe);
        assert_eq!(eviction_band(Some(0.0)), Band::Safe);
        assert_eq!(eviction_band(Some(12.0)), Band::Warning);
        assert_eq!(eviction_band(Some(30.5)), Band::Danger);
    }

    #[test]
    fn verdict_display_and_pass() {
        assert_eq!(Verdict::Danger.to_string(), "PASS (danger)");
        assert!(Verdict::Warning.passed());
        assert!(!Verdict::Fail.passed());
    }
}
