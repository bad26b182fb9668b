//! The performance targets (docs/performance.md), judged on the figures one bench run
//! measured. Attention targets are shares of each case's roofline bound computed from the
//! same run's read rooflines and matmul yardstick, so a target means the same on every
//! adapter; they are judged against this run's bound, whatever it is, and never the other
//! way round.

use super::long_context::{FLATNESS_TARGET, LongCurve};
use super::machine_check::SLOW_MACHINE;
use super::{BenchReport, Binding, Figure, NOISY_SPREAD, Section, TargetCheck};

fn ctx_of(case: &str) -> u32 {
    word_after(case, "ctx")
}

fn batch_of(case: &str) -> u32 {
    word_after(case, "batch")
}

fn word_after(case: &str, key: &str) -> u32 {
    let words: Vec<&str> = case.split(' ').collect();
    words
        .iter()
        .position(|w| *w == key)
        .and_then(|i| words.get(i + 1))
        .and_then(|b| b.parse().ok())
        .unwrap_or(0)
}

/// The lowest share of its bound among `set`, and that case.
fn worst<'a>(set: impl Iterator<Item = &'a Figure>) -> Option<(f64, &'a Figure)> {
    set.filter_map(|f| Some((f.of_bound?, f)))
        .min_by(|a, b| a.0.total_cmp(&b.0))
}

/// What to add to a verdict judged on `measured` (each a name, its spread and the machine's
/// speed around it) when any spread more than [`NOISY_SPREAD`] or ran on a machine slowed
/// below [`SLOW_MACHINE`]: the verdict may then be the machine's rather than the kernel's.
/// `rerun` says how to tell the two apart.
fn noisy_note(
    measured: impl IntoIterator<Item = (String, Option<f64>, Option<f64>)>,
    rerun: &str,
) -> String {
    let noisy: Vec<String> = measured
        .into_iter()
        .flat_map(|(name, spread, speed)| {
            let spread = spread
                .filter(|&s| s > NOISY_SPREAD)
                .map(|s| format!("{name} spread {:.0}%", 100.0 * s));
            let slow = speed.filter(|&s| s < SLOW_MACHINE).map(|s| {
                format!(
                    "{name} measured while the machine check ran at {:.0}% of its best speed",
                    100.0 * s
                )
            });
            spread.into_iter().chain(slow)
        })
        .collect();
    if noisy.is_empty() {
        String::new()
    } else {
        format!("; noisy: {} ({rerun})", noisy.join(", "))
    }
}

/// [`noisy_note`] for a verdict judged on `figures`.
fn noise_note(figures: &[&Figure]) -> String {
    noisy_note(
        figures
            .iter()
            .map(|f| (f.case.clone(), f.spread, f.machine_speed)),
        "rerun it with --case to tell noise from the kernel",
    )
}

/// [`noisy_note`] for a long-context verdict: the two timings `curve`'s flatness divides
/// (its pair timed again in rounds where there is one, else the sweep's two points).
fn long_noise_note(curve: &LongCurve) -> String {
    let points = curve.flatness_points().into_iter().flatten();
    let doubts: Vec<(String, Option<f64>, Option<f64>)> = match curve.flatness_pair {
        // One machine check after the pair speaks for both.
        Some(pair) => points
            .zip(pair.spreads)
            .map(|(p, spread)| {
                (
                    format!("ctx {} (timed again)", p.context),
                    Some(spread),
                    None,
                )
            })
            .chain([("the two timed again".into(), None, pair.machine_speed)])
            .collect(),
        None => points
            .map(|p| (format!("ctx {}", p.context), p.spread, p.machine_speed))
            .collect(),
    };
    noisy_note(
        doubts,
        "of that curve; rerun it with --long-context --case to tell noise from the kernel",
    )
}

/// The performance targets judged on the figures present.
/// `value` with `decimals` decimals, or more (up to four) while it would print as the
/// `limit` it is judged against: a ratio of 1.502 against "<= 1.5x" reads 1.502x, not a
/// "1.50x" beside MISSED.
fn against(value: f64, limit: f64, decimals: usize) -> String {
    (decimals..=4)
        .map(|d| (format!("{value:.d$}"), format!("{limit:.d$}")))
        .find(|(shown, at_limit)| shown != at_limit)
        .map_or(format!("{value:.4}"), |(shown, _)| shown)
}

pub(super) fn judge(report: &BenchReport) -> Vec<TargetCheck> {
    let figures = &report.figures;
    let weaker = report.yardstick_shortfall().map_or(String::new(), |s| {
        format!(
            "; the matmul yardstick is {s:.2}x slower than the fastest attention case, so compute bounds are not bounds"
        )
    });
    // A compute-bound case's bound is only a bound when the yardstick outruns every case;
    // otherwise it is left unjudged (and said so) rather than passed on a weak yardstick.
    let shortfall = report.yardstick_shortfall();
    let share = |target: &str, set: Vec<&Figure>, need: f64| {
        let (judged, unjudged): (Vec<&Figure>, Vec<&Figure>) = set
            .into_iter()
            .partition(|f| shortfall.is_none() || f.binding != Some(Binding::Compute));
        let worst = worst(judged.into_iter());
        let note = match (shortfall, unjudged.len()) {
            (Some(s), n) if n > 0 => format!(
                "{n} compute-bound case(s) not judged: the matmul yardstick is {s:.2}x slower than the fastest attention case, so their bound is not a bound"
            ),
            _ => String::new(),
        };
        TargetCheck {
            target: format!("{target}: >= {:.0}% of its bound", 100.0 * need),
            measured: match (worst, note.is_empty()) {
                (Some((w, f)), true) => format!(
                    "worst {}% ({}), judged against this run's bound{}",
                    against(100.0 * w, 100.0 * need, 0),
                    f.case,
                    noise_note(&[f])
                ),
                (Some((w, f)), false) => format!(
                    "worst {}% ({}), judged against this run's bound{}; {note}",
                    against(100.0 * w, 100.0 * need, 0),
                    f.case,
                    noise_note(&[f])
                ),
                (None, false) => format!("not judged: {note}"),
                (None, true) => "not measured".into(),
            },
            met: worst.map(|(w, _)| w >= need),
        }
    };
    if let Some(long) = &report.long_context {
        // A long-context run measures no grid: only its own target applies.
        let worst = long.worst_flatness();
        return vec![TargetCheck {
            target: format!(
                "long context: ns per position at the longest context within {FLATNESS_TARGET}x of 4K's, every curve"
            ),
            measured: worst.as_ref().map_or(
                "not measured (no curve reached past 4K)".into(),
                |(w, curve)| {
                    format!(
                        "worst {}x ({}){weaker}{}",
                        against(*w, FLATNESS_TARGET, 2),
                        curve.label(),
                        long_noise_note(curve)
                    )
                },
            ),
            met: worst.map(|(w, _)| w <= FLATNESS_TARGET),
        }];
    }
    let model = |c: &str| c.starts_with("qwen");
    let decode = |section: Section, f16: bool| {
        move |f: &&Figure| {
            f.section == section
                && model(&f.case)
                && ctx_of(&f.case) >= 4096
                && (f.case.contains(" f16 ") == f16)
                && !f.case.contains(" f32 ")
        }
    };
    let mut out = vec![
        share(
            "decode f16, batch >= 8, context >= 4K",
            figures
                .iter()
                .filter(decode(Section::Decode, true))
                .filter(|f| batch_of(&f.case) >= 8)
                .collect(),
            0.80,
        ),
        share(
            "decode f16, batch 1, context >= 4K",
            figures
                .iter()
                .filter(decode(Section::Decode, true))
                .filter(|f| batch_of(&f.case) == 1)
                .collect(),
            0.70,
        ),
        share(
            "quantized decode (int8, int4, fp8) on their real bytes, batch >= 8, context >= 4K",
            figures
                .iter()
                .filter(decode(Section::Formats, false))
                .filter(|f| batch_of(&f.case) >= 8)
                .collect(),
            0.80,
        ),
        share(
            "quantized decode on their real bytes, batch 1, context >= 4K",
            figures
                .iter()
                .filter(decode(Section::Formats, false))
                .filter(|f| batch_of(&f.case) == 1)
                .collect(),
            0.70,
        ),
        share(
            "prefill at 2K tokens",
            figures
                .iter()
                .filter(|f| f.section == Section::Prefill && f.case.ends_with("ctx 2048"))
                .collect(),
            0.60,
        ),
    ];
    let ggml: Vec<Option<(f64, &Figure)>> = [1, 4]
        .iter()
        .map(|g| {
            figures
                .iter()
                .find(|f| f.case.starts_with(&format!("ggml-shape-gqa{g} ")))
                .and_then(|f| Some((f.seconds?, f)))
        })
        .collect();
    if let [Some((g1, f1)), Some((g4, f4))] = ggml[..] {
        out.push(TargetCheck {
            target: "ggml shape (ctx 8192, hd 128, 8 KV heads, f16) GQA 1: <= 30 ms per step"
                .into(),
            measured: format!("{:.1} ms{}", g1 * 1e3, noise_note(&[f1])),
            met: Some(g1 <= 0.030),
        });
        out.push(TargetCheck {
            target: "ggml shape GQA 4: <= 1.5x its GQA 1 time".into(),
            measured: format!(
                "{}x (the two timed in alternation){}",
                against(g4 / g1, 1.5, 2),
                noise_note(&[f1, f4])
            ),
            met: Some(g4 <= 1.5 * g1),
        });
    }
    let pool = figures
        .iter()
        .find(|f| f.case.starts_with("block pool"))
        .and_then(|f| f.value);
    out.push(TargetCheck {
        target: "block pool: >= 10 M allocate+free pairs per second".into(),
        measured: pool.map_or("not measured".into(), |p| format!("{p:.1} M/s")),
        met: pool.map(|p| p >= 10.0),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::Clock;
    use crate::gpu::AdapterReport;

    fn figure(section: Section, case: &str, of_bound: f64) -> Figure {
        let mut f = Figure::blank(section, case, crate::bench::Unit::Gigabytes);
        f.seconds = Some(1.0);
        f.of_bound = Some(of_bound);
        f.binding = Some(Binding::Memory);
        f.flops = Some(1e9);
        f
    }

    fn report(figures: Vec<Figure>, matmul_flops: f64) -> BenchReport {
        BenchReport {
            copy_bytes_per_s: 1e9,
            complete: true,
            matmul_flops,
            figures,
            ..BenchReport::new(AdapterReport::default(), Clock::WallClock, false)
        }
    }

    #[test]
    fn a_figure_next_to_its_limit_prints_enough_decimals_to_match_its_verdict() {
        assert_eq!(against(1.502, 1.5, 2), "1.502");
        assert_eq!(against(1.49, 1.5, 2), "1.49");
        assert_eq!(against(79.6, 80.0, 0), "79.6");
        assert_eq!(against(44.0, 80.0, 0), "44");
        assert_eq!(against(1.5, 1.5, 2), "1.5000");
    }

    #[test]
    fn decode_targets_take_the_worst_share_of_bound_in_their_set() {
        let r = report(
            vec![
                figure(Section::Decode, "qwen2.5-7b f16 batch 8 ctx 4096", 0.9),
                figure(Section::Decode, "qwen2.5-7b f16 batch 32 ctx 16384", 0.79),
                // Outside every set: short context, f32, the ggml shape.
                figure(Section::Decode, "qwen2.5-7b f16 batch 8 ctx 512", 0.1),
                figure(Section::Decode, "qwen2.5-7b f32 batch 8 ctx 4096", 0.1),
                figure(Section::Decode, "ggml-shape-gqa1 f16 batch 1 ctx 8192", 0.1),
                figure(Section::Decode, "qwen2.5-0.5b f16 batch 1 ctx 4096", 0.71),
                figure(Section::Formats, "qwen2.5-7b int4 batch 8 ctx 4096", 0.85),
                figure(Section::Formats, "qwen2.5-7b f16 batch 8 ctx 4096", 0.1),
            ],
            1e12,
        );
        let t = judge(&r);
        assert_eq!(t[0].met, Some(false));
        assert!(t[0].measured.contains("79%"), "{}", t[0].measured);
        assert!(t[0].measured.contains("judged against this run's bound"));
        assert_eq!(t[1].met, Some(true));
        assert_eq!(
            t[2].met,
            Some(true),
            "the f16 row of a format group is not quantized"
        );
        assert_eq!(t[3].met, None);
        assert_eq!(t[4].met, None, "no prefill at 2K");
    }

    #[test]
    fn a_weaker_yardstick_leaves_compute_bound_cases_unjudged() {
        // 1e9 flops in 1 s beats a 0.5 GFLOP/s matmul by 2x.
        let mut compute = figure(Section::Decode, "qwen2.5-0.5b f16 batch 8 ctx 4096", 1.4);
        compute.binding = Some(Binding::Compute);
        let r = report(vec![compute.clone()], 0.5e9);
        assert!((r.yardstick_shortfall().unwrap() - 2.0).abs() < 1e-12);
        let t = judge(&r);
        assert_eq!(t[0].met, None, "{:?}", t[0]);
        assert!(t[0].measured.starts_with("not judged"), "{}", t[0].measured);
        assert!(t[0].measured.contains("2.00x slower"), "{}", t[0].measured);
        // A memory-bound case beside it is still judged, and the note stays.
        let memory = figure(Section::Decode, "qwen2.5-7b f16 batch 8 ctx 4096", 0.5);
        let t = judge(&report(vec![compute.clone(), memory], 0.5e9));
        assert_eq!(t[0].met, Some(false));
        assert!(t[0].measured.contains("1 compute-bound case(s) not judged"));
        // With a yardstick faster than every case, compute-bound cases are judged.
        let t = judge(&report(vec![compute], 1e12));
        assert_eq!(t[0].met, Some(true));
    }

    #[test]
    fn a_verdict_on_a_noisy_figure_says_so() {
        let mut noisy = figure(Section::Decode, "qwen2.5-7b f16 batch 8 ctx 4096", 0.5);
        noisy.spread = Some(0.4);
        let mut steady = figure(Section::Decode, "qwen2.5-7b f16 batch 32 ctx 4096", 0.6);
        steady.spread = Some(0.02);
        let mut g1 = figure(Section::Decode, "ggml-shape-gqa1 f16 batch 1 ctx 8192", 0.9);
        g1.spread = Some(0.72);
        let mut g4 = figure(Section::Decode, "ggml-shape-gqa4 f16 batch 1 ctx 8192", 0.9);
        g4.seconds = Some(1.2);
        let t = judge(&report(vec![noisy, steady.clone(), g1, g4], 1e12));
        // The worst case decides the verdict and is the noisy one.
        assert!(
            t[0].measured
                .contains("noisy: qwen2.5-7b f16 batch 8 ctx 4096 spread 40%"),
            "{}",
            t[0].measured
        );
        let ggml = t
            .iter()
            .find(|c| c.target.starts_with("ggml shape GQA 4"))
            .unwrap();
        assert!(
            ggml.measured
                .contains("ggml-shape-gqa1 f16 batch 1 ctx 8192 spread 72%")
        );
        // A steady deciding figure adds nothing.
        let t = judge(&report(vec![steady.clone()], 1e12));
        assert!(!t[0].measured.contains("noisy"), "{}", t[0].measured);
        // Nor does one measured on a machine at its best speed, or a little off it.
        let mut checked = steady;
        checked.machine_speed = Some(0.9);
        let t = judge(&report(vec![checked.clone()], 1e12));
        assert!(!t[0].measured.contains("noisy"), "{}", t[0].measured);
        // A steady figure measured on a slowed machine says so, however low its spread.
        checked.machine_speed = Some(0.55);
        let t = judge(&report(vec![checked], 1e12));
        assert!(
            t[0].measured.contains(
                "noisy: qwen2.5-7b f16 batch 32 ctx 4096 measured while the machine check ran \
                 at 55% of its best speed"
            ),
            "{}",
            t[0].measured
        );
    }

    #[test]
    fn a_long_context_verdict_on_a_noisy_point_says_so() {
        use crate::bench::{LongContext, LongCurve, LongPoint};
        let point = |context: u32, ns: f64, spread: f64| LongPoint {
            context,
            seconds: ns * context as f64 * 1e-9,
            spread: Some(spread),
            ns_per_position: ns,
            of_bound: 0.5,
            binding: Binding::Compute,
            flops: 1e6,
            machine_speed: None,
        };
        let curve = |spread_at_16k: f64| LongCurve {
            model: "m".into(),
            format: crate::cache::KvFormat::F16,
            batch: 1,
            // The 2K point is noisy too, but the flatness does not divide it.
            points: vec![
                point(2048, 300.0, 0.8),
                point(4096, 150.0, 0.02),
                point(16384, 210.0, spread_at_16k),
            ],
            stopped: None,
            flatness_pair: None,
        };
        let judged = |c: LongCurve| {
            let mut r = report(Vec::new(), 1e12);
            r.long_context = Some(LongContext {
                contexts: vec![2048, 4096, 16384],
                curves: vec![c],
            });
            judge(&r).remove(0)
        };
        let t = judged(curve(0.45));
        assert_eq!(t.met, Some(false), "{t:?}");
        assert!(
            t.measured.contains("noisy: ctx 16384 spread 45%"),
            "{}",
            t.measured
        );
        assert!(!t.measured.contains("ctx 2048"), "{}", t.measured);
        assert!(!judged(curve(0.03)).measured.contains("noisy"));
        // A steady point on a machine the check found slowed is noted too.
        let mut slowed = curve(0.03);
        slowed.points[2].machine_speed = Some(0.6);
        let t = judged(slowed.clone());
        assert!(
            t.measured.contains(
                "noisy: ctx 16384 measured while the machine check ran at 60% of its best speed"
            ),
            "{}",
            t.measured
        );
        // With the pair timed again in rounds, the verdict is the pair's and so are its doubts.
        let mut paired = curve(0.45);
        paired.flatness_pair = Some(crate::bench::FlatnessPair {
            seconds: [1e-3, 4.4e-3],
            spreads: [0.02, 0.3],
            machine_speed: Some(0.9),
        });
        let t = judged(paired.clone());
        assert_eq!(t.met, Some(true), "{t:?}");
        assert!(t.measured.starts_with("worst 1.10x"), "{}", t.measured);
        assert!(
            t.measured
                .contains("noisy: ctx 16384 (timed again) spread 30% (of that curve")
                && !t.measured.contains("spread 45%"),
            "{}",
            t.measured
        );
        // The machine check after the pair is named once, for both.
        paired.flatness_pair.as_mut().unwrap().machine_speed = Some(0.6);
        let t = judged(paired);
        assert!(
            t.measured.contains(
                "spread 30%, the two timed again measured while the machine check ran at 60%"
            ),
            "{}",
            t.measured
        );
        assert_eq!(
            t.measured.matches("machine check").count(),
            1,
            "{}",
            t.measured
        );
        slowed.points[2].machine_speed = Some(0.95);
        assert!(!judged(slowed).measured.contains("noisy"));
    }
}
