//! The performance targets (docs/performance.md), judged on the figures one bench run measured. Ratios
//! are to the same run's rooflines, so a target means the same on every adapter.

use super::{Figure, TargetCheck};

/// The performance targets judged on the figures present.
pub(super) fn judge(figures: &[Figure]) -> Vec<TargetCheck> {
    let decode = |pred: &dyn Fn(&str) -> bool| -> Vec<&Figure> {
        figures
            .iter()
            .filter(|f| f.section == "decode" && f.ratio.is_some() && pred(&f.case))
            .collect()
    };
    let ctx_of = |case: &str| -> u32 {
        case.rsplit(' ')
            .next()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    };
    let batch_of = |case: &str| -> u32 {
        let words: Vec<&str> = case.split(' ').collect();
        words
            .iter()
            .position(|w| *w == "batch")
            .and_then(|i| words.get(i + 1))
            .and_then(|b| b.parse().ok())
            .unwrap_or(0)
    };
    let worst = |set: Vec<&Figure>| {
        set.iter()
            .filter_map(|f| f.ratio)
            .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.min(r))))
    };
    let judge = |target: &str, worst: Option<f64>, need: f64| TargetCheck {
        target: target.into(),
        measured: worst.map_or("not measured".into(), |w| {
            format!("worst {:.0}% of copy", 100.0 * w)
        }),
        met: worst.map(|w| w >= need),
    };
    let model = |c: &str| c.starts_with("qwen");
    let mut out = vec![
        judge(
            "decode f16, batch >= 8, context >= 4K: >= 85% of the copy roofline",
            worst(decode(&|c| {
                model(c) && c.contains(" f16 ") && batch_of(c) >= 8 && ctx_of(c) >= 4096
            })),
            0.85,
        ),
        judge(
            "decode f16, batch 1, context >= 4K: >= 60% of the copy roofline",
            worst(decode(&|c| {
                model(c) && c.contains(" f16 ") && batch_of(c) == 1 && ctx_of(c) >= 4096
            })),
            0.60,
        ),
    ];
    let prefill = figures
        .iter()
        .filter(|f| f.section == "prefill" && f.case.ends_with("ctx 2048"))
        .filter_map(|f| f.ratio)
        .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.min(r))));
    out.push(TargetCheck {
        target: "prefill at 2K tokens: >= 60% of the matmul's FLOP/s".into(),
        measured: prefill.map_or("not measured (full bench only)".into(), |p| {
            format!("worst {:.0}% of matmul", 100.0 * p)
        }),
        met: prefill.map(|p| p >= 0.6),
    });
    let ggml: Vec<Option<f64>> = (1..=4)
        .step_by(3)
        .map(|g| {
            figures
                .iter()
                .find(|f| f.case.starts_with(&format!("ggml-shape-gqa{g} ")))
                .and_then(|f| f.seconds)
        })
        .collect();
    if let [Some(g1), Some(g4)] = ggml[..] {
        out.push(TargetCheck {
            target: "ggml shape (ctx 8192, hd 128, 8 KV heads, f16) GQA 1: <= 30 ms per step"
                .into(),
            measured: format!("{:.1} ms", g1 * 1e3),
            met: Some(g1 <= 0.030),
        });
        out.push(TargetCheck {
            target: "ggml shape GQA 4: <= 1.5x its GQA 1 time".into(),
            measured: format!("{:.2}x (the two timed in alternation)", g4 / g1),
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
