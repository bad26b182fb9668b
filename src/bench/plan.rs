//! The bench grid: which cases run, in which order, under which labels.

use super::host;
use super::kernels::AttentionCase;
use super::{BenchOptions, Section};
use crate::cache::{KvFormat, ModelGeometry};

pub(super) fn geometries() -> [ModelGeometry; 2] {
    [ModelGeometry::qwen2_5_0_5b(), ModelGeometry::qwen2_5_7b()]
}

pub(super) fn label(case: &AttentionCase) -> String {
    format!(
        "{} {} batch {} ctx {}",
        case.geometry.name,
        case.dtype.name(),
        case.batch,
        case.context
    )
}

/// Turns a case result into a figure: `amount / seconds` in units of 1e9 (`GB/s`,
/// `GFLOP/s`), with its ratio to `roofline` (same units per second, unscaled).
/// What one planned case measures.
#[derive(Clone, Debug)]
pub enum Work {
    /// Decode attention bandwidth (KV bytes read / time), a ratio of the copy roofline.
    Decode(AttentionCase),
    /// Decode of one KV format, timed in alternation with the other formats of its group.
    Format(AttentionCase),
    /// Prefill FLOP/s, a ratio of the matmul roofline.
    Prefill(AttentionCase),
    /// Append bandwidth (bytes moved / time), a ratio of the copy roofline.
    Append(AttentionCase),
    /// Host bookkeeping operations per second (no GPU).
    Host(HostOp),
}

/// The host bookkeeping operations the bench rates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostOp {
    /// Block-pool allocate + free pairs.
    PoolPairs,
    /// Fork and free of a 64-block sequence.
    Forks,
    /// Prefix-cache lookups of a 1024-token prompt.
    PrefixLookups,
}

impl HostOp {
    fn label(self) -> &'static str {
        match self {
            HostOp::PoolPairs => "block pool allocate+free pairs",
            HostOp::Forks => "fork + free of a 64-block sequence",
            HostOp::PrefixLookups => "prefix lookup of a 1024-token prompt",
        }
    }

    /// Operations per second; `scale` multiplies the repetitions (the full grid takes more).
    pub(super) fn rate(self, scale: u64) -> f64 {
        match self {
            HostOp::PoolPairs => host::pool_pairs_per_s(2_000_000 * scale),
            HostOp::Forks => host::forks_per_s(20_000 * scale),
            HostOp::PrefixLookups => host::prefix_lookups_per_s(20_000 * scale),
        }
    }
}

/// One case of the grid, before it runs.
#[derive(Clone, Debug)]
pub struct PlannedCase {
    /// What it measures.
    pub work: Work,
    /// The label its figure will carry.
    pub label: String,
    /// Cases of one group are timed in alternation, because their ratio to each other is
    /// the point (the ggml shape at GQA 1 and GQA 4; the formats of one decode shape).
    pub group: Option<u32>,
}

impl PlannedCase {
    fn new(work: Work) -> Self {
        let label = match &work {
            Work::Decode(case) | Work::Format(case) | Work::Prefill(case) => label(case),
            Work::Append(case) => format!("{} tokens, {}", case.context, label(case)),
            Work::Host(op) => op.label().into(),
        };
        Self {
            work,
            label,
            group: None,
        }
    }

    /// The section its figure belongs to (and `--only` selects it by).
    pub fn section(&self) -> Section {
        match self.work {
            Work::Decode(_) => Section::Decode,
            Work::Format(_) => Section::Formats,
            Work::Prefill(_) => Section::Prefill,
            Work::Append(_) => Section::Append,
            Work::Host(_) => Section::Host,
        }
    }
}

/// Every case `options` selects, in the order they run (the rooflines come first and are not
/// listed). Callers check a `--case` filter against this before any work.
pub fn plan(options: &BenchOptions) -> Vec<PlannedCase> {
    let quick = options.quick;
    let mut out = Vec::new();
    let (batches, contexts): (&[u32], &[u32]) = if quick {
        (&[1, 8], &[512, 4096])
    } else {
        (&[1, 8, 32, 128], &[512, 4096, 16384, 32768])
    };
    let dtypes: &[KvFormat] = if quick {
        &[KvFormat::F16]
    } else {
        &[KvFormat::F32, KvFormat::F16]
    };
    for geometry in geometries() {
        for &dtype in dtypes {
            for &batch in batches {
                for &context in contexts {
                    let case = AttentionCase {
                        geometry: geometry.clone(),
                        dtype,
                        batch,
                        context,
                        kernels: options.kernels,
                    };
                    out.push(PlannedCase::new(Work::Decode(case)));
                }
            }
        }
    }
    for gqa in [1, 4] {
        let case = AttentionCase {
            geometry: ModelGeometry::new(&format!("ggml-shape-gqa{gqa}"), 1, 8 * gqa, 8, 128),
            dtype: KvFormat::F16,
            batch: 1,
            context: 8192,
            kernels: options.kernels,
        };
        out.push(PlannedCase {
            group: Some(0),
            ..PlannedCase::new(Work::Decode(case))
        });
    }
    // Every format beside f16, one group per (model, batch, context).
    let (format_models, format_shapes): (&[ModelGeometry], &[(u32, u32)]) = if quick {
        (&geometries()[1..], &[(8, 4096)])
    } else {
        (
            &geometries(),
            &[(1, 4096), (8, 4096), (1, 16384), (8, 16384)],
        )
    };
    let mut group = 1;
    for geometry in format_models {
        for &(batch, context) in format_shapes {
            for dtype in KvFormat::ALL {
                let case = AttentionCase {
                    geometry: geometry.clone(),
                    dtype,
                    batch,
                    context,
                    kernels: options.kernels,
                };
                out.push(PlannedCase {
                    group: Some(group),
                    ..PlannedCase::new(Work::Format(case))
                });
            }
            group += 1;
        }
    }
    let prefill_lengths: &[u32] = if quick { &[256] } else { &[512, 2048] };
    for geometry in geometries() {
        for &context in prefill_lengths {
            let case = AttentionCase {
                geometry: geometry.clone(),
                dtype: KvFormat::F16,
                batch: 1,
                context,
                kernels: options.kernels,
            };
            out.push(PlannedCase::new(Work::Prefill(case)));
        }
    }
    for geometry in geometries() {
        for dtype in KvFormat::ALL {
            // f16 for both models; the quantizing formats at the 7B shape.
            if dtype == KvFormat::F32 || (dtype != KvFormat::F16 && geometry.head_dim != 128) {
                continue;
            }
            let case = AttentionCase {
                geometry: geometry.clone(),
                dtype,
                batch: 1,
                context: if quick { 1024 } else { 8192 },
                kernels: options.kernels,
            };
            out.push(PlannedCase::new(Work::Append(case)));
        }
    }
    for op in [HostOp::PoolPairs, HostOp::Forks, HostOp::PrefixLookups] {
        out.push(PlannedCase::new(Work::Host(op)));
    }
    out.retain(|c| options.wants(c.section()) && options.wants_case(&c.label));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{AttentionAlgorithm, AttentionOptions, HalfDecode, Reductions};

    fn options(quick: bool, sections: &[Section], cases: &[&str]) -> BenchOptions {
        BenchOptions {
            quick,
            max_pool_bytes: 1 << 30,
            sections: sections.to_vec(),
            cases: cases.iter().map(|s| s.to_string()).collect(),
            long_context: None,
            kernels: AttentionOptions::default(),
        }
    }

    #[test]
    fn forced_kernels_reach_every_attention_case_and_keep_the_labels() {
        let mut forced = options(true, &[], &[]);
        forced.kernels = AttentionOptions {
            algorithm: Some(AttentionAlgorithm::Tiled),
            reductions: Some(Reductions::Serial),
            half_decode: Some(HalfDecode::Integer),
            ..Default::default()
        };
        let planned = plan(&forced);
        let attention: Vec<&AttentionCase> = planned
            .iter()
            .filter_map(|c| match &c.work {
                Work::Decode(a) | Work::Format(a) | Work::Prefill(a) | Work::Append(a) => Some(a),
                Work::Host(_) => None,
            })
            .collect();
        assert!(!attention.is_empty());
        for case in &attention {
            assert_eq!(case.kernels, forced.kernels, "{case:?}");
        }
        let labels = |p: Vec<PlannedCase>| p.into_iter().map(|c| c.label).collect::<Vec<_>>();
        assert_eq!(labels(planned), labels(plan(&options(true, &[], &[]))));
    }

    #[test]
    fn the_grids_cover_every_section_and_the_target_grid() {
        for quick in [true, false] {
            let plan = plan(&options(quick, &[], &[]));
            let mut sections: Vec<_> = plan.iter().map(PlannedCase::section).collect();
            sections.dedup();
            assert_eq!(sections, Section::SELECTABLE, "sections in plan order");
        }
        // batch {1, 8, 32, 128} x context {512, 4K, 16K, 32K} x 2 models x 2 dtypes, plus
        // the two ggml shapes.
        let full = plan(&options(false, &[Section::Decode], &[]));
        assert_eq!(full.len(), 4 * 4 * 2 * 2 + 2);
        assert!(
            full.iter()
                .any(|c| c.label == "qwen2.5-7b f16 batch 128 ctx 32768")
        );
    }

    #[test]
    fn the_ggml_pair_and_each_format_group_are_timed_in_alternation() {
        for quick in [true, false] {
            let planned = plan(&options(quick, &[], &[]));
            let ggml: Vec<_> = planned
                .iter()
                .filter(|c| c.group == Some(0))
                .map(|c| c.label.as_str())
                .collect();
            assert_eq!(
                ggml,
                [
                    "ggml-shape-gqa1 f16 batch 1 ctx 8192",
                    "ggml-shape-gqa4 f16 batch 1 ctx 8192"
                ]
            );
            let formats: Vec<_> = planned
                .iter()
                .filter(|c| c.section() == Section::Formats)
                .collect();
            let groups = if quick { 1 } else { 2 * 4 };
            assert_eq!(formats.len(), groups * KvFormat::ALL.len());
            for group in formats.chunks(KvFormat::ALL.len()) {
                assert!(group.iter().all(|c| c.group == group[0].group));
                assert!(group.iter().any(|c| c.label.contains(" f16 ")));
            }
        }
    }

    #[test]
    fn case_filters_match_label_substrings_within_the_chosen_sections() {
        let picked = plan(&options(
            false,
            &[Section::Decode],
            &["batch 8 ctx 4096", "ggml-shape-gqa4"],
        ));
        let labels: Vec<_> = picked.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "qwen2.5-0.5b f32 batch 8 ctx 4096",
                "qwen2.5-0.5b f16 batch 8 ctx 4096",
                "qwen2.5-7b f32 batch 8 ctx 4096",
                "qwen2.5-7b f16 batch 8 ctx 4096",
                "ggml-shape-gqa4 f16 batch 1 ctx 8192",
            ]
        );
        assert!(plan(&options(true, &[Section::Prefill], &["batch 8"])).is_empty());
        let host = plan(&options(true, &[Section::Host], &["block pool"]));
        assert_eq!(host.len(), 1);
        assert!(matches!(host[0].work, Work::Host(HostOp::PoolPairs)));
    }
}
