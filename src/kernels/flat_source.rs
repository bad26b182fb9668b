//! The straight-line parts of shaders/attention_flat.wgsl, generated for one (GQA chunk, head dim,
//! load chunk) combination.
//!
//! Why generated text rather than WGSL loops over private arrays: llvmpipe (the adapter this
//! kernel exists for) moves a private array indexed by a loop counter to per-lane scratch
//! memory unless the loop is unrolled, and a scratch access costs as much as the buffer load
//! the kernel is trying to amortise. Named `let`/`var` values per head and per four-element
//! slice stay in SSA registers on every compiler. Only the scores of the block being walked
//! go through a private array: one store and one load per key and row, against a head dim's
//! worth of multiply-adds each, buy a kernel in two short loops per block instead of one
//! long one (see the template).

use std::fmt::Write;

/// How one 16-byte KV load chunk of a format is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChunkShape {
    /// Four-value slices one chunk carries (1 for f32, 2 for f16, 4 for 8-bit codes, 8 for
    /// int4).
    pub slices: u32,
    /// Scales per row and values per scale; `None` for formats without scales.
    pub scales: Option<(u32, u32)>,
}

impl ChunkShape {
    /// The scale group of slice `i` (0 for formats without scales).
    fn group_of(self, i: u32) -> u32 {
        self.scales.map_or(0, |(_, group)| i * 4 / group)
    }

    /// The running score of head `g` and key `t` that slice `i` adds to: the score itself
    /// without scales, the unscaled partial of the slice's scale group with them.
    fn score_part(self, g: u32, t: u32, i: u32) -> String {
        match self.scales {
            None => format!("d{g}_{t}"),
            Some(_) => format!("d{g}_{t}_{}", self.group_of(i)),
        }
    }

    /// Every running score `score_part` names for head `g` and key `t`.
    fn score_parts(self, g: u32, t: u32) -> Vec<String> {
        match self.scales {
            None => vec![format!("d{g}_{t}")],
            Some((row_scales, _)) => (0..row_scales).map(|p| format!("d{g}_{t}_{p}")).collect(),
        }
    }

    /// The weight value slice `i` of key `t` takes in head `g`'s accumulator: the softmax
    /// weight, times the slice's group scale for formats with scales.
    fn value_weight(self, g: u32, t: u32, i: u32) -> String {
        match self.scales {
            None => format!("p{g}_{t}"),
            Some(_) => format!("pv{g}_{t}_{}", self.group_of(i)),
        }
    }
}

/// The most keys of one block the scores array holds: the largest supported block size.
const MAX_BLOCK_KEYS: u32 = {
    let sizes = crate::cache::SUPPORTED_BLOCK_SIZES;
    let mut max = 0;
    let mut i = 0;
    while i < sizes.len() {
        if sizes[i] > max {
            max = sizes[i];
        }
        i += 1;
    }
    max
};

/// Fills the `{{setup}}`, `{{block_start}}`, `{{scores}}`, `{{rescale}}`, `{{values}}` and
/// `{{store}}` markers of `template`.
///
/// `group` query heads of each of `queries` consecutive query tokens share each load: row
/// `r` is head `r % group` of query `r / group`. `chunk` says how a KV load chunk decodes;
/// the value loop takes `key_tile` keys per iteration.
pub(crate) fn fill(
    template: &str,
    group: u32,
    queries: u32,
    head_dim: u32,
    chunk: ChunkShape,
    key_tile: u32,
) -> String {
    let hd4 = head_dim / 4;
    let vec4_per_chunk = chunk.slices;
    let chunks = hd4 / vec4_per_chunk;
    let num_rows = group * queries;
    let rows = 0..num_rows;
    let query_of = |r: u32| r / group;
    // Whether key `key` is live for query q: inside the split and q's own causal window.
    // With one query, key_end already stops at its last visible key.
    let liveness = |out: &mut String, key: &str, suffix: &str| {
        for q in 0..queries {
            let causal = if queries > 1 {
                format!(" && {key} < visible{q}")
            } else {
                String::new()
            };
            line(
                out,
                3,
                format_args!("let live{q}{suffix} = {key} < key_end{causal} && {key} >= from{q};"),
            );
        }
    };

    let mut setup = String::new();
    for q in 0..queries {
        line(
            &mut setup,
            1,
            format_args!("let query{q} = min(first_query + {q}u, last_query);"),
        );
        line(
            &mut setup,
            1,
            format_args!("let visible{q} = info.x - info.z + query{q} + 1u;"),
        );
        line(
            &mut setup,
            1,
            format_args!("let from{q} = window_start(visible{q});"),
        );
    }
    for g in rows.clone() {
        let (q, head) = (query_of(g), g % group);
        line(
            &mut setup,
            1,
            format_args!(
                "let row{g} = (info.y + query{q}) * params.q_heads + min(first + {head}u, group_last);"
            ),
        );
        for i in 0..hd4 {
            line(
                &mut setup,
                1,
                format_args!("let q{g}_{i} = q[row{g} * HD4 + {i}u] * params.scale;"),
            );
            line(
                &mut setup,
                1,
                format_args!("var acc{g}_{i} = vec4<f32>(0.0);"),
            );
        }
        line(&mut setup, 1, format_args!("var m{g} = MASKED;"));
        line(&mut setup, 1, format_args!("var l{g} = 0.0;"));
    }
    line(
        &mut setup,
        1,
        format_args!("var scores: array<f32, {}>;", num_rows * MAX_BLOCK_KEYS),
    );

    let mut block_start = String::new();
    for g in rows.clone() {
        line(
            &mut block_start,
            2,
            format_args!("var block_max{g} = MASKED;"),
        );
    }

    // Scores of one key: each K chunk is loaded once and used for every row. With scales,
    // codes are multiplied unscaled and each group's partial score once by its scale: a
    // multiply per group and row instead of one per value.
    let mut scores = String::new();
    liveness(&mut scores, "key", "");
    if let Some((row_scales, _)) = chunk.scales {
        for p in 0..row_scales {
            line(
                &mut scores,
                3,
                format_args!("let ks{p} = k_scale(at, 0u, {p}u);"),
            );
        }
    }
    for g in rows.clone() {
        for name in chunk.score_parts(g, 0) {
            line(&mut scores, 3, format_args!("var {name} = 0.0;"));
        }
    }
    for j in 0..chunks {
        line(&mut scores, 3, format_args!("let k{j} = load_k(at, {j}u);"));
        for h in 0..vec4_per_chunk {
            let i = j * vec4_per_chunk + h;
            line(
                &mut scores,
                3,
                format_args!("let k{j}_{h} = chunk_slice(k{j}, {h}u, 1.0);"),
            );
            for g in rows.clone() {
                let part = chunk.score_part(g, 0, i);
                line(
                    &mut scores,
                    3,
                    format_args!("{part} += dot(q{g}_{i}, k{j}_{h});"),
                );
            }
        }
    }
    for g in rows.clone() {
        let score = match chunk.scales {
            None => format!("d{g}_0"),
            Some((row_scales, _)) => (0..row_scales)
                .map(|p| format!("ks{p} * d{g}_0_{p}"))
                .collect::<Vec<_>>()
                .join(" + "),
        };
        line(
            &mut scores,
            3,
            format_args!("let s{g} = select(MASKED, {score}, live{});", query_of(g)),
        );
        line(&mut scores, 3, format_args!("scores[slot + {g}u] = s{g};"));
        line(
            &mut scores,
            3,
            format_args!("block_max{g} = max(block_max{g}, s{g});"),
        );
    }

    // One max update and accumulator rescale per row and block.
    let mut rescale = String::new();
    for g in rows.clone() {
        line(
            &mut rescale,
            2,
            format_args!("let m_new{g} = max(m{g}, block_max{g});"),
        );
        line(
            &mut rescale,
            2,
            format_args!("let alpha{g} = exp(m{g} - m_new{g});"),
        );
        line(&mut rescale, 2, format_args!("l{g} = l{g} * alpha{g};"));
        line(&mut rescale, 2, format_args!("m{g} = m_new{g};"));
        for i in 0..hd4 {
            line(
                &mut rescale,
                2,
                format_args!("acc{g}_{i} = acc{g}_{i} * alpha{g};"),
            );
        }
    }

    // Values of a tile of keys: every accumulator slice takes the whole tile in one
    // assignment. On llvmpipe each assignment to a loop-carried value inside the loop is a
    // masked store to the stack (load, blend, store), so one per slice per tile rather than
    // one per key.
    let mut values = String::new();
    let tile = 0..key_tile;
    for t in tile.clone() {
        line(
            &mut values,
            3,
            format_args!("let slot{t} = (tile + {t}u - key_from) * SCORE_ROWS;"),
        );
        liveness(&mut values, &format!("tile + {t}u"), &format!("_{t}"));
        if let Some((row_scales, _)) = chunk.scales {
            for p in 0..row_scales {
                line(
                    &mut values,
                    3,
                    format_args!("let vs{t}_{p} = v_scale(at, {t}u, {p}u);"),
                );
            }
        }
    }
    for g in rows.clone() {
        let q = query_of(g);
        let mut sum = format!("l{g}");
        for t in tile.clone() {
            line(
                &mut values,
                3,
                format_args!(
                    "let p{g}_{t} = select(0.0, exp(scores[slot{t} + {g}u] - m{g}), live{q}_{t});"
                ),
            );
            sum += &format!(" + p{g}_{t}");
            if let Some((row_scales, _)) = chunk.scales {
                for p in 0..row_scales {
                    line(
                        &mut values,
                        3,
                        format_args!("let pv{g}_{t}_{p} = p{g}_{t} * vs{t}_{p};"),
                    );
                }
            }
        }
        line(&mut values, 3, format_args!("l{g} = {sum};"));
    }
    for j in 0..chunks {
        for t in tile.clone() {
            line(
                &mut values,
                3,
                format_args!("let v{t}_{j} = load_v(at, {}u);", t * chunks + j),
            );
        }
        for h in 0..vec4_per_chunk {
            let i = j * vec4_per_chunk + h;
            for t in tile.clone() {
                line(
                    &mut values,
                    3,
                    format_args!("let v{t}_{j}_{h} = chunk_slice(v{t}_{j}, {h}u, 1.0);"),
                );
            }
            for g in rows.clone() {
                let mut sum = format!("acc{g}_{i}");
                for t in tile.clone() {
                    let weight = chunk.value_weight(g, t, i);
                    sum += &format!(" + {weight} * v{t}_{j}_{h}");
                }
                line(&mut values, 3, format_args!("acc{g}_{i} = {sum};"));
            }
        }
    }

    // With one partition per row the rows are final (`output_factor`, attention_bindings.wgsl).
    let mut store = String::new();
    for g in rows {
        line(
            &mut store,
            1,
            format_args!("let out{g} = row{g} * params.num_partitions + part;"),
        );
        line(
            &mut store,
            1,
            format_args!("let factor{g} = output_factor(l{g});"),
        );
        for i in 0..hd4 {
            line(
                &mut store,
                1,
                format_args!("partial_acc[out{g} * HD4 + {i}u] = acc{g}_{i} * factor{g};"),
            );
        }
        line(
            &mut store,
            1,
            format_args!("partial_ml[out{g}] = vec2<f32>(m{g}, l{g});"),
        );
    }

    template
        .replace("{{setup}}\n", &setup)
        .replace("{{block_start}}\n", &block_start)
        .replace("{{scores}}\n", &scores)
        .replace("{{rescale}}\n", &rescale)
        .replace("{{values}}\n", &values)
        .replace("{{store}}\n", &store)
        .replace("SCORE_ROWS", &format!("{num_rows}u"))
}

fn line(out: &mut String, indent: usize, text: std::fmt::Arguments<'_>) {
    let _ = writeln!(out, "{:width$}{text}", "", width = indent * 4);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARKERS: [&str; 6] = [
        "{{setup}}",
        "{{block_start}}",
        "{{scores}}",
        "{{rescale}}",
        "{{values}}",
        "{{store}}",
    ];

    #[test]
    fn every_marker_is_filled_and_every_slice_is_used() {
        let template = include_str!("../../shaders/attention_flat.wgsl");
        let f16 = ChunkShape {
            slices: 2,
            scales: None,
        };
        let source = fill(template, 3, 1, 64, f16, 2);
        for marker in MARKERS {
            assert!(template.contains(marker), "the template has {marker}");
            assert!(!source.contains(marker), "{marker} was left unfilled");
        }
        assert!(!source.contains("SCORE_ROWS"), "the row count is filled in");
        assert!(source.contains("let slot = (key - key_from) * 3u;"));
        assert!(
            source.contains("var scores: array<f32, 96>;"),
            "3 rows x 32 keys"
        );
        // 16 slices per head: each query slice is multiplied into its row's score of the
        // key, each accumulator slice is rescaled once per block and takes both keys of a
        // value tile in one assignment.
        for g in 0..3 {
            for i in 0..16 {
                let (j, h) = (i / 2, i % 2);
                assert!(source.contains(&format!("d{g}_0 += dot(q{g}_{i}, k{j}_{h});")));
                assert!(source.contains(&format!("acc{g}_{i} = acc{g}_{i} * alpha{g};")));
                assert!(source.contains(&format!(
                    "acc{g}_{i} = acc{g}_{i} + p{g}_0 * v0_{j}_{h} + p{g}_1 * v1_{j}_{h};"
                )));
            }
            assert!(source.contains(&format!("scores[slot + {g}u] = s{g};")));
            assert!(source.contains(&format!(
                "let p{g}_1 = select(0.0, exp(scores[slot1 + {g}u] - m{g}), live0_1);"
            )));
            assert!(source.contains(&format!("l{g} = l{g} + p{g}_0 + p{g}_1;")));
        }
        // Each key's row is loaded once for the whole group: 8 chunks of K per key in the
        // score loop, 8 of V per key in the value loop (two keys per iteration).
        assert_eq!(source.matches("load_k(at, ").count(), 8);
        assert_eq!(source.matches("load_v(at, ").count(), 2 * 8);
        assert!(!source.contains("_scale("), "f16 reads no scales");
    }

    #[test]
    fn query_tokens_share_every_load_and_mask_their_own_keys() {
        let template = include_str!("../../shaders/attention_flat.wgsl");
        let f16 = ChunkShape {
            slices: 2,
            scales: None,
        };
        // Two heads for each of three query tokens: rows 0-1 are token 0, 4-5 token 2.
        let source = fill(template, 2, 3, 64, f16, 2);
        assert!(source.contains("let query2 = min(first_query + 2u, last_query);"));
        assert!(source.contains(
            "let row5 = (info.y + query2) * params.q_heads + min(first + 1u, group_last);"
        ));
        // Each key is live for a token inside the split, before the token's own position
        // and inside its own window; each row masks with its token's test, in both loops.
        assert!(source.contains("let live2 = key < key_end && key < visible2 && key >= from2;"));
        assert!(source.contains(
            "let live2_1 = tile + 1u < key_end && tile + 1u < visible2 && tile + 1u >= from2;"
        ));
        assert!(source.contains("let s5 = select(MASKED, d5_0, live2);"));
        assert!(source.contains("let p1_0 = select(0.0, exp(scores[slot0 + 1u] - m1), live0_0);"));
        // Six rows, one load per chunk of each key for all of them.
        assert_eq!(source.matches("load_k(at, ").count(), 8);
        assert_eq!(source.matches("load_v(at, ").count(), 2 * 8);
        assert!(source.contains("d5_0 += dot(q5_15, k7_1);"));
        assert!(source.contains("partial_ml[out5] = vec2<f32>(m5, l5);"));
        // One token (decode): the split's end is already the token's own.
        let decode = fill(template, 2, 1, 64, f16, 2);
        assert!(decode.contains("let live0 = key < key_end && key >= from0;"));
        assert!(decode.contains("let live0_0 = tile + 0u < key_end && tile + 0u >= from0;"));
        assert!(!decode.contains("visible0;"));
    }

    #[test]
    fn scaled_chunks_read_each_keys_scales_once_and_use_the_right_group() {
        let template = include_str!("../../shaders/attention_flat.wgsl");
        // int8 at head dim 64: 4 slices per chunk, 2 scales per row of 32 values each.
        let int8 = ChunkShape {
            slices: 4,
            scales: Some((2, 32)),
        };
        let source = fill(template, 1, 1, 64, int8, 2);
        for g in 0..2 {
            let load = format!("let ks{g} = k_scale(at, 0u, {g}u);");
            assert_eq!(source.matches(&load).count(), 1, "{load}");
            for t in 0..2 {
                let load = format!("let vs{t}_{g} = v_scale(at, {t}u, {g}u);");
                assert_eq!(source.matches(&load).count(), 1, "{load}");
            }
        }
        // Codes decode unscaled. Slices 0..8 (values 0..32) belong to scale 0, slices 8..16
        // to scale 1: each group's partial score is scaled once, and each group's values
        // take the softmax weight times their scale.
        assert!(source.contains("let k1_3 = chunk_slice(k1, 3u, 1.0);"));
        assert!(source.contains("d0_0_0 += dot(q0_7, k1_3);"));
        assert!(source.contains("d0_0_1 += dot(q0_8, k2_0);"));
        assert!(source.contains("let s0 = select(MASKED, ks0 * d0_0_0 + ks1 * d0_0_1, live0);"));
        assert!(source.contains("let pv0_1_1 = p0_1 * vs1_1;"));
        assert!(source.contains("let v0_3_3 = chunk_slice(v0_3, 3u, 1.0);"));
        assert!(source.contains("acc0_15 = acc0_15 + pv0_0_1 * v0_3_3 + pv0_1_1 * v1_3_3;"));
        assert!(source.contains("acc0_0 = acc0_0 + pv0_0_0 * v0_0_0 + pv0_1_0 * v1_0_0;"));
    }
}
