//! The throughput-utilization sweep's pure logic: which demand % values a sweep runs, the CUDA
//! reference report's "Throughput vs. Cache Utilization" bands, and where a measured curve
//! bends (its knee), all without a GPU so the arithmetic is tested on synthetic points.
//!
//! The report states: 0-60% utilization keeps 100% of the baseline throughput, 60-70% keeps
//! 95%, 70-80% keeps 85%, above 80% keeps 50-60%, and above 90% degrades severely (cache
//! thrashing). A sweep measures the same curve by running one scaled scenario at a series of
//! pool sizes, and [`knees`] finds the first point past each of the report's drops.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Most points one sweep may run: enough for a smooth curve, few enough that a typo such as
/// `--points 1000` is refused rather than running for hours.
pub const MAX_POINTS: u32 = 64;

/// How the values of a range `A..B` are spaced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Spacing {
    /// Equal ratios between neighbours: dense at low demand, where the knee is expected, and
    /// still reaching far past 100% in a few points.
    #[default]
    Geometric,
    /// Equal steps between neighbours.
    Linear,
}

impl fmt::Display for Spacing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Spacing::Geometric => "geometric",
            Spacing::Linear => "linear",
        })
    }
}

/// The demand % values a sweep runs, lowest first, and how they were chosen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DemandPlan {
    /// Demand % of each point (demand / budget x 100), strictly increasing.
    pub demands_pct: Vec<f64>,
    /// The spacing of a range, or `None` for an explicit list.
    pub spacing: Option<Spacing>,
}

/// Why a demand specification was refused; each names the flag at fault via [`Self::flag`].
#[derive(Clone, Debug, PartialEq, Error)]
pub enum DemandError {
    /// An item is not a number.
    #[error("'{0}' is not a number; give a range like 20..400 or a list like 20,50,80,100")]
    NotANumber(String),
    /// A value is zero, negative or not finite.
    #[error("{0} is not a positive demand %")]
    NotPositive(f64),
    /// A range whose start is not below its end.
    #[error("the range {0}..{1} must start below its end")]
    EmptyRange(f64, f64),
    /// A list with repeated values.
    #[error("{0} appears twice; give each demand % once")]
    Repeated(f64),
    /// Fewer than two values in a list.
    #[error("one value is not a sweep; give a range like 20..400 or at least two values")]
    OnePoint,
    /// Too few or too many points for a range.
    #[error("{0} points; a sweep runs 2 to {MAX_POINTS}")]
    Points(u32),
    /// `--points` given with a list.
    #[error("goes with a range A..B, not with a list of values")]
    PointsWithList,
}

impl DemandError {
    /// The flag the problem is about: `--points` or `--demand`.
    pub fn flag(&self) -> &'static str {
        match self {
            DemandError::Points(_) | DemandError::PointsWithList => "--points",
            _ => "--demand",
        }
    }
}

fn number(text: &str) -> Result<f64, DemandError> {
    let text = text.trim();
    let text = text.strip_suffix('%').unwrap_or(text);
    let v: f64 = text
        .parse()
        .map_err(|_| DemandError::NotANumber(text.to_string()))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(DemandError::NotPositive(v))
    }
}

impl DemandPlan {
    /// Parses `A..B` (with `points` values spaced by `spacing`, 12 when `points` is `None`) or a
    /// comma list `20,50,80` (sorted; `points` must then be `None`).
    pub fn parse(text: &str, points: Option<u32>, spacing: Spacing) -> Result<Self, DemandError> {
        if let Some((a, b)) = text.split_once("..") {
            let (a, b) = (number(a)?, number(b)?);
            if a >= b {
                return Err(DemandError::EmptyRange(a, b));
            }
            let n = points.unwrap_or(12);
            if !(2..=MAX_POINTS).contains(&n) {
                return Err(DemandError::Points(n));
            }
            return Ok(Self {
                demands_pct: spaced(a, b, n, spacing),
                spacing: Some(spacing),
            });
        }
        if points.is_some() {
            return Err(DemandError::PointsWithList);
        }
        let mut values = text.split(',').map(number).collect::<Result<Vec<_>, _>>()?;
        values.sort_by(f64::total_cmp);
        if let Some(w) = values.windows(2).find(|w| w[0] == w[1]) {
            return Err(DemandError::Repeated(w[0]));
        }
        match values.len() {
            0 | 1 => Err(DemandError::OnePoint),
            n if n > MAX_POINTS as usize => Err(DemandError::Points(n as u32)),
            _ => Ok(Self {
                demands_pct: values,
                spacing: None,
            }),
        }
    }

    /// E.g. `12 points from 20% to 400%, geometric` or `5 points listed`.
    pub fn describe(&self) -> String {
        let (first, last) = (
            self.demands_pct.first().copied().unwrap_or(0.0),
            self.demands_pct.last().copied().unwrap_or(0.0),
        );
        match self.spacing {
            Some(s) => format!(
                "{} points from {first}% to {last}% demand, spaced {s}ally",
                self.demands_pct.len()
            ),
            None => format!("{} demand % values as listed", self.demands_pct.len()),
        }
    }
}

/// `n` values from `a` to `b` inclusive, both ends exact.
fn spaced(a: f64, b: f64, n: u32, spacing: Spacing) -> Vec<f64> {
    let last = (n - 1) as f64;
    (0..n)
        .map(|i| match i {
            0 => a,
            i if i == n - 1 => b,
            i => {
                let t = i as f64 / last;
                match spacing {
                    Spacing::Geometric => a * (b / a).powf(t),
                    Spacing::Linear => a + (b - a) * t,
                }
            }
        })
        .collect()
}

/// A band of the report's "Throughput vs. Cache Utilization" table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportBand {
    /// 0-60%: 100% throughput (the baseline).
    Baseline,
    /// 60-70%: 95% (-5%).
    Mild,
    /// 70-80%: 85% (-15%).
    Moderate,
    /// 80-90%: 50-60% (-40% to -50%).
    Steep,
    /// Above 90%: severe degradation, cache thrashing (no figure in the report).
    Thrashing,
}

impl ReportBand {
    /// Every band, lowest utilization first.
    pub const ALL: [ReportBand; 5] = [
        ReportBand::Baseline,
        ReportBand::Mild,
        ReportBand::Moderate,
        ReportBand::Steep,
        ReportBand::Thrashing,
    ];

    /// The band a utilization (0-100+) falls in; each band includes its lower edge.
    pub fn of(utilization_pct: f64) -> Self {
        match utilization_pct {
            u if u < 60.0 => ReportBand::Baseline,
            u if u < 70.0 => ReportBand::Mild,
            u if u < 80.0 => ReportBand::Moderate,
            u if u < 90.0 => ReportBand::Steep,
            _ => ReportBand::Thrashing,
        }
    }

    /// The utilization where the band starts, in %.
    pub fn from_pct(self) -> f64 {
        match self {
            ReportBand::Baseline => 0.0,
            ReportBand::Mild => 60.0,
            ReportBand::Moderate => 70.0,
            ReportBand::Steep => 80.0,
            ReportBand::Thrashing => 90.0,
        }
    }

    /// The throughput the report gives for the band, % of baseline, as (low, high). Above 90%
    /// the report states no figure; the 50-60% of ">80%" is its upper bound there.
    pub fn throughput_pct(self) -> (f64, f64) {
        match self {
            ReportBand::Baseline => (100.0, 100.0),
            ReportBand::Mild => (95.0, 95.0),
            ReportBand::Moderate => (85.0, 85.0),
            ReportBand::Steep | ReportBand::Thrashing => (50.0, 60.0),
        }
    }
}

impl fmt::Display for ReportBand {
    /// The band as the report states it, e.g. `60-70%: 95%`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReportBand::Baseline => "0-60%: 100%",
            ReportBand::Mild => "60-70%: 95%",
            ReportBand::Moderate => "70-80%: 85%",
            ReportBand::Steep => ">80%: 50-60%",
            ReportBand::Thrashing => ">90%: thrashing",
        })
    }
}

/// What the curve analysis needs of one point; `None` where the point was not measured
/// (unservable, refused or stopped by an error).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CurvePoint {
    /// Demand % as planned.
    pub demand_pct: f64,
    /// Measured peak use %.
    pub peak_use_pct: Option<f64>,
    /// Measured completed requests per second.
    pub requests_per_s: Option<f64>,
    /// Measured preemptions.
    pub preemptions: Option<u64>,
}

/// The baseline req/s: that of the lowest-demand point with a positive measurement.
pub fn baseline(points: &[CurvePoint]) -> Option<f64> {
    points
        .iter()
        .filter(|p| p.requests_per_s.is_some_and(|r| r > 0.0))
        .min_by(|a, b| a.demand_pct.total_cmp(&b.demand_pct))
        .and_then(|p| p.requests_per_s)
}

/// A point's req/s as % of `base`.
pub fn relative_pct(point: &CurvePoint, base: Option<f64>) -> Option<f64> {
    Some(100.0 * point.requests_per_s? / base?)
}

/// The lowest and highest req/s, as % of the baseline, among the points whose pool held
/// every request at once (demand at most 100%, no preemption): they run the same work with
/// the same concurrency and differ only in unused pool, so their spread is the run's noise.
/// `None` with fewer than two such points.
pub fn noise_spread(points: &[CurvePoint]) -> Option<(f64, f64)> {
    let base = baseline(points);
    let calm: Vec<f64> = points
        .iter()
        .filter(|p| p.demand_pct <= 100.0 && p.preemptions == Some(0))
        .filter_map(|p| relative_pct(p, base))
        .collect();
    (calm.len() >= 2).then(|| {
        let low = calm.iter().copied().fold(f64::INFINITY, f64::min);
        let high = calm.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (low, high)
    })
}

/// One of the report's drops and the first measured point past it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Knee {
    /// The drop below baseline, in % (5, 15 or 40).
    pub drop_pct: f64,
    /// The utilization % from which the report puts throughput that far down (60, 70, 80).
    pub report_utilization_pct: f64,
    /// The first point, in demand order, whose req/s is more than `drop_pct` below the
    /// baseline: (demand %, peak use %, req/s as % of baseline); `None` if none is.
    pub first: Option<(f64, f64, f64)>,
    /// True when that point's req/s is no lower than the lowest of the [`noise_spread`]: the
    /// drop is not distinguishable from the run's noise.
    pub within_noise: bool,
}

/// The report's three drops: (drop below baseline %, utilization % where it starts).
pub const REPORT_DROPS: [(f64, f64); 3] = [(5.0, 60.0), (15.0, 70.0), (40.0, 80.0)];

/// Where the measured curve first falls more than 5%, 15% and 40% below its baseline.
pub fn knees(points: &[CurvePoint]) -> Vec<Knee> {
    let base = baseline(points);
    let noise = noise_spread(points);
    let mut ordered: Vec<&CurvePoint> = points.iter().collect();
    ordered.sort_by(|a, b| a.demand_pct.total_cmp(&b.demand_pct));
    REPORT_DROPS
        .iter()
        .map(|&(drop_pct, report_utilization_pct)| {
            let first = ordered.iter().find_map(|p| {
                let rel = relative_pct(p, base)?;
                (rel < 100.0 - drop_pct)
                    .then(|| (p.demand_pct, p.peak_use_pct.unwrap_or(0.0), rel))
            });
            Knee {
                drop_pct,
                report_utilization_pct,
                first,
                within_noise: matches!((first, noise), (Some((_, _, rel)), Some((low, _))) if rel >= low),
            }
        })
        .collect()
}

/// One sentence per knee, e.g. `more than 5% below baseline first at demand 86.4% (peak use
/// 80.1%, 91.2% of baseline); the report: from 60% utilization`.
pub fn knee_lines(knees: &[Knee]) -> Vec<String> {
    knees
        .iter()
        .map(|k| {
            let report = format!(
                "the report: from {:.0}% utilization",
                k.report_utilization_pct
            );
            match k.first {
                Some((demand, peak, rel)) => format!(
                    "more than {:.0}% below baseline: first at demand {demand:.1}% (peak use \
                     {peak:.1}%, {rel:.1}% of baseline{}); {report}",
                    k.drop_pct,
                    if k.within_noise {
                        ", within the noise spread"
                    } else {
                        ""
                    }
                ),
                None => format!(
                    "more than {:.0}% below baseline: no point falls that far; {report}",
                    k.drop_pct
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn ranges_are_spaced_geometrically_or_linearly_with_exact_ends() {
        let g = DemandPlan::parse("20..400", Some(12), Spacing::Geometric).unwrap();
        assert_eq!(g.demands_pct.len(), 12);
        assert_eq!((g.demands_pct[0], g.demands_pct[11]), (20.0, 400.0));
        let ratio = g.demands_pct[1] / g.demands_pct[0];
        for w in g.demands_pct.windows(2) {
            assert!(close(w[1] / w[0], ratio), "{:?}", g.demands_pct);
        }
        assert!(close(ratio.powi(11), 20.0));
        let l = DemandPlan::parse("10..100", Some(4), Spacing::Linear).unwrap();
        assert_eq!(l.demands_pct, vec![10.0, 40.0, 70.0, 100.0]);
        assert_eq!(l.spacing, Some(Spacing::Linear));
        assert!(l.describe().contains("linear"), "{}", l.describe());
        let d = DemandPlan::parse("20..400", None, Spacing::Geometric).unwrap();
        assert_eq!(d.demands_pct.len(), 12);
    }

    #[test]
    fn lists_are_sorted_and_bad_specifications_name_their_flag() {
        let l = DemandPlan::parse("150, 20,80%,50", None, Spacing::Geometric).unwrap();
        assert_eq!(l.demands_pct, vec![20.0, 50.0, 80.0, 150.0]);
        assert_eq!(l.spacing, None);
        let err =
            |t: &str, p: Option<u32>| DemandPlan::parse(t, p, Spacing::Geometric).unwrap_err();
        assert_eq!(err("400..20", None), DemandError::EmptyRange(400.0, 20.0));
        assert_eq!(err("20..20", None), DemandError::EmptyRange(20.0, 20.0));
        assert_eq!(err("0..20", None), DemandError::NotPositive(0.0));
        assert_eq!(err("-5..20", None), DemandError::NotPositive(-5.0));
        assert_eq!(err("20..x", None), DemandError::NotANumber("x".into()));
        assert_eq!(err("20,,50", None), DemandError::NotANumber(String::new()));
        assert_eq!(err("20..400", Some(1)), DemandError::Points(1));
        assert_eq!(err("20..400", Some(65)), DemandError::Points(65));
        assert_eq!(err("50", None), DemandError::OnePoint);
        assert_eq!(err("50,50", None), DemandError::Repeated(50.0));
        assert!(matches!(err("nan..5", None), DemandError::NotPositive(v) if v.is_nan()));
        assert!(matches!(err("20..inf", None), DemandError::NotPositive(_)));
        assert_eq!(err("20,50", Some(3)).flag(), "--points");
        assert_eq!(err("20..400", Some(0)).flag(), "--points");
        assert_eq!(err("400..20", None).flag(), "--demand");
    }

    #[test]
    fn bands_follow_the_report_table() {
        let cases = [
            (0.0, ReportBand::Baseline),
            (59.9, ReportBand::Baseline),
            (60.0, ReportBand::Mild),
            (69.9, ReportBand::Mild),
            (70.0, ReportBand::Moderate),
            (80.0, ReportBand::Steep),
            (89.9, ReportBand::Steep),
            (90.0, ReportBand::Thrashing),
            (400.0, ReportBand::Thrashing),
        ];
        for (u, band) in cases {
            assert_eq!(ReportBand::of(u), band, "{u}");
        }
        assert_eq!(ReportBand::Mild.throughput_pct(), (95.0, 95.0));
        assert_eq!(ReportBand::Steep.throughput_pct(), (50.0, 60.0));
        assert_eq!(ReportBand::Moderate.to_string(), "70-80%: 85%");
        for b in ReportBand::ALL {
            assert_eq!(ReportBand::of(b.from_pct()), b);
        }
    }

    fn point(demand: f64, peak: f64, rps: Option<f64>) -> CurvePoint {
        CurvePoint {
            demand_pct: demand,
            peak_use_pct: Some(peak),
            requests_per_s: rps,
            // Preempted only where the finished requests cannot all fit.
            preemptions: rps.map(|_| u64::from(demand > 100.0)),
        }
    }

    #[test]
    fn knees_are_the_first_points_past_each_drop() {
        // Given out of order, with an unmeasured point: the baseline is the lowest demand
        // that was measured (30%), not the unmeasured 20%.
        let points = [
            point(110.0, 98.0, Some(50.0)),
            point(20.0, 20.0, None),
            point(30.0, 30.0, Some(100.0)),
            point(60.0, 59.0, Some(97.0)),
            point(70.0, 69.0, Some(94.0)),
            point(80.0, 79.0, Some(80.0)),
            point(90.0, 88.0, Some(70.0)),
        ];
        assert_eq!(baseline(&points), Some(100.0));
        let k = knees(&points);
        assert_eq!(k.len(), 3);
        assert_eq!(k[0].first, Some((70.0, 69.0, 94.0)));
        assert_eq!(k[1].first, Some((80.0, 79.0, 80.0)));
        assert_eq!(k[2].first, Some((110.0, 98.0, 50.0)));
        assert_eq!((k[0].report_utilization_pct, k[2].drop_pct), (60.0, 40.0));
        let lines = knee_lines(&k);
        assert!(lines[0].contains("demand 70.0%") && lines[0].contains("from 60%"));
        // The unpressured points (demand <= 100%, no preemption) span 70% to 100%: the 5% and
        // 15% knees are inside that spread, the 40% one (50%) is not.
        assert_eq!(noise_spread(&points), Some((70.0, 100.0)));
        let noise: Vec<bool> = k.iter().map(|k| k.within_noise).collect();
        assert_eq!(noise, [true, true, false]);
        assert!(lines[0].contains("within the noise spread"), "{}", lines[0]);
        assert!(!lines[2].contains("noise"), "{}", lines[2]);
    }

    #[test]
    fn a_flat_curve_has_no_knee_and_exactly_the_threshold_is_not_past_it() {
        let points = [
            point(20.0, 20.0, Some(10.0)),
            point(200.0, 100.0, Some(9.5)),
            point(400.0, 100.0, Some(10.4)),
        ];
        let k = knees(&points);
        assert!(k.iter().all(|k| k.first.is_none()), "{k:?}");
        assert!(knee_lines(&k)[1].contains("no point falls that far"));
        assert_eq!(relative_pct(&points[1], baseline(&points)), Some(95.0));
        assert!(
            knees(&[point(20.0, 20.0, None)])
                .iter()
                .all(|k| k.first.is_none())
        );
    }
}
