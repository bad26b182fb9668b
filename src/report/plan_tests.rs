//! The planning arithmetic against values worked out by hand from the published geometries.

use super::*;

/// 24 GiB, the reference card.
const BUDGET: u64 = 24 * BYTES_PER_GB;

fn input(geometry: ModelGeometry, format: KvFormat) -> PlanInput {
    PlanInput {
        geometry,
        max_context: 32768,
        format,
        block_size: 16,
        window: None,
        generation: 512,
        budget_bytes: BUDGET,
        concurrency_seq: 4096,
    }
}

fn counts(row: &BatchRow) -> Vec<u64> {
    row.fits.iter().map(|f| f.count).collect()
}

#[test]
fn small_model_f16_batches_match_hand_arithmetic() {
    // 12,288 bytes per token, 196,608 per block: 24 GiB buys exactly 131,072 blocks;
    // 80% of it 104,857 blocks and 60% 78,643.
    let plan = input(ModelGeometry::qwen2_5_0_5b(), KvFormat::F16).plan(&[]);
    assert_eq!(plan.bytes_per_token, 12_288);
    assert_eq!(plan.pool_blocks, 131_072);
    assert_eq!(plan.batch.len(), 6);
    // 1024 + 512 tokens = 96 blocks: 78643/96, 104857/96, 131072/96.
    let r = plan.row(1024).unwrap();
    assert_eq!(r.blocks_per_request, 96);
    assert_eq!(counts(r), vec![819, 1092, 1365]);
    // 4096 + 512 = 288 blocks.
    let r = plan.row(4096).unwrap();
    assert_eq!(counts(r), vec![273, 364, 455]);
    let full = r.fit(100).unwrap();
    assert!((full.use_pct - 100.0 * 455.0 * 288.0 / 131_072.0).abs() < 1e-9);
    assert_eq!(r.reference, Some((128, 64)));
    assert!((r.safe_ratio().unwrap() - 455.0 / 128.0).abs() < 1e-12);
    assert!((r.recommended_ratio().unwrap() - 273.0 / 64.0).abs() < 1e-12);
    // 32768 + 512 = 2080 blocks: 63 x 2080 = 131,040.
    assert_eq!(plan.row(32768).unwrap().fit(100).unwrap().count, 63);
}

#[test]
fn big_model_f16_batches_match_hand_arithmetic() {
    // 57,344 bytes per token, 917,504 per block: 28,086 whole blocks in 24 GiB.
    let plan = input(ModelGeometry::qwen2_5_7b(), KvFormat::F16).plan(&[]);
    assert_eq!(plan.bytes_per_token, 57_344);
    assert_eq!(plan.pool_blocks, 28_086);
    assert_eq!(plan.row(1024).unwrap().fit(100).unwrap().count, 292);
    assert_eq!(plan.row(4096).unwrap().fit(100).unwrap().count, 97);
    assert_eq!(plan.row(32768).unwrap().fit(100).unwrap().count, 13);
    // 60%: 15,461,882,265 bytes / 917,504 = 16,852 blocks; / 288 = 58.
    assert_eq!(plan.row(4096).unwrap().fit(60).unwrap().count, 58);
}

#[test]
fn concurrency_counts_streams_of_whole_batches() {
    // 0.5B at 4096 + 512: 288 blocks a request, 9,216 a stream of 32.
    let plan = input(ModelGeometry::qwen2_5_0_5b(), KvFormat::F16).plan(&[]);
    let full: Vec<u64> = plan
        .concurrency
        .iter()
        .map(|r| r.fit(100).unwrap().count)
        .collect();
    assert_eq!(full, vec![14, 7, 3, 1, 0]);
    let first = &plan.concurrency[0];
    assert_eq!(first.reference, 16);
    // The report's 16 streams of 32 would hold 512 x 288 blocks.
    assert_eq!(first.reference_bytes, 512 * 288 * 196_608);
}

#[test]
fn quantized_formats_pay_for_their_scales() {
    // int8: 64 one-byte values + 2 f32 scales = 72 bytes a row; 6,912 bytes a token;
    // 110,592 a block; 233,016 blocks; 233,016 / 288 = 809.
    let plan = input(ModelGeometry::qwen2_5_0_5b(), KvFormat::Int8).plan(&[]);
    assert_eq!(plan.bytes_per_token, 6_912);
    assert_eq!(plan.pool_blocks, 233_016);
    assert_eq!(plan.row(4096).unwrap().fit(100).unwrap().count, 809);
}

#[test]
fn a_window_caps_the_blocks_a_request_holds() {
    let mut i = input(ModelGeometry::qwen2_5_0_5b(), KvFormat::F16);
    i.window = Some(4096);
    let plan = i.plan(&[]);
    // 4096 / 16 + 1 = 257 blocks (a window starting mid-block spans one more).
    let r = plan.row(32768).unwrap();
    assert_eq!(r.blocks_per_request, 257);
    assert_eq!(r.fit(100).unwrap().count, 510);
    // Shorter than the window: all of its 96 blocks.
    assert_eq!(plan.row(1024).unwrap().blocks_per_request, 96);
}

#[test]
fn rows_stop_at_the_model_context() {
    let mut i = input(ModelGeometry::qwen2_5_0_5b(), KvFormat::F16);
    i.max_context = 8192;
    let seqs: Vec<u32> = i.plan(&[]).batch.iter().map(|r| r.seq_len).collect();
    assert_eq!(seqs, vec![1024, 2048, 4096, 8192]);
}

#[test]
fn markers_land_on_their_row_and_threshold() {
    let i = input(ModelGeometry::qwen2_5_0_5b(), KvFormat::F16);
    let a = MarkerInput {
        label: "A".into(),
        batch: 32,
        seq_len: 4096,
        concurrency: 4,
        generation: 256,
        budget_bytes: Some(2 * BUDGET),
    };
    let m = i.mark(&a);
    // 128 requests x 4352 tokens = 128 x 272 blocks = 34,816 of 131,072.
    assert_eq!(m.row, Some(4096));
    assert!((m.use_pct - 100.0 * 34_816.0 / 131_072.0).abs() < 1e-9);
    assert_eq!(m.within_pct, Some(60));
    assert!((m.own_budget_use_pct.unwrap() - m.use_pct / 2.0).abs() < 1e-9);
    // The plan's own 100% boundary is within 100 but not 80; one more request is past it.
    let boundary = MarkerInput {
        batch: 455,
        concurrency: 1,
        generation: 512,
        ..a.clone()
    };
    assert_eq!(i.mark(&boundary).within_pct, Some(100));
    let past = MarkerInput {
        batch: 456,
        ..boundary.clone()
    };
    assert_eq!(i.mark(&past).within_pct, None);
    let odd = MarkerInput { seq_len: 3000, ..a };
    assert_eq!(i.mark(&odd).row, None);
}
