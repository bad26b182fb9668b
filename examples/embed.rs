//! Embedding pagekv in a host application that owns its wgpu device, queue, buffers and
//! command encoder. The host creates everything itself, lends the device to pagekv, and
//! records pagekv's append + decode into its own encoder next to its own commands (a buffer
//! clear and a copy to its staging buffer), all in one submission.
//!
//! Run: `cargo run --example embed`. Exits 1 when the GPU result differs from the CPU reference.

use pagekv::cache::{CacheLayout, KvDtype, ModelGeometry};
use pagekv::gpu::{GpuContext, GpuError, KvStorage};
use pagekv::kernels::{AppendBatch, AttentionBatch, PagedAttention, SeqView};
use pagekv::reference::{self, AttentionShape, Tolerance};
use wgpu::util::DeviceExt;

/// Deterministic values in [-1, 1): the host's own "activations".
fn data(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. The host's own wgpu objects; pagekv is not involved yet.
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let Ok(adapter) = pollster::block_on(instance.request_adapter(&Default::default())) else {
        eprintln!("{}", GpuError::NoAdapter);
        std::process::exit(2);
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("host device"),
        required_features: adapter.features() & wgpu::Features::SHADER_F16,
        required_limits: adapter.limits(),
        ..Default::default()
    }))?;

    // 2. Lend the device to pagekv: one KV layer of Qwen2.5-0.5B's geometry, f16 storage.
    let ctx = GpuContext::from_device(device.clone(), queue.clone(), adapter.get_info());
    let g = ModelGeometry::qwen2_5_0_5b();
    let (qh, kvh, hd) = (g.q_heads as usize, g.kv_heads as usize, g.head_dim as usize);
    let layout = CacheLayout {
        geometry: g,
        block_size: 16,
        dtype: KvDtype::F16,
    };
    let storage = KvStorage::new(&ctx, &layout, 8, 1, None)?;
    let kernels = PagedAttention::new(&ctx, &storage)?;

    // 3. Two sequences with host-chosen, non-contiguous block tables.
    let contexts = [37usize, 5];
    let tables: [&[u32]; 2] = [&[5, 0, 3], &[6]];
    let slots: Vec<u32> = (0..2)
        .flat_map(|s| (0..contexts[s]).map(move |p| tables[s][p / 16] * 16 + (p % 16) as u32))
        .collect();
    let tokens = slots.len();
    let (k, v) = (data(tokens * kvh * hd, 1), data(tokens * kvh * hd, 2));
    let q = data(2 * qh * hd, 3); // one decode query per sequence: its last token

    // 4. The host's buffers: inputs, the attention output and a staging buffer for readback.
    let init = |label, contents: &[f32]| {
        device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::cast_slice(contents),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        })
    };
    let (k_buf, v_buf, q_buf) = (init("host k", &k), init("host v", &v), init("host q", &q));
    let out_bytes = (q.len() * 4) as u64;
    let out_buf = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("host out"),
        size: out_bytes,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("host staging"),
        size: out_bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });

    // 5. Metadata uploads, then one encoder with the host's commands around pagekv's passes.
    let (mut append, mut attn) = (AppendBatch::default(), AttentionBatch::default());
    kernels.prepare_append(&storage, &mut append, &slots)?;
    let views: Vec<SeqView<'_>> = (0..2)
        .map(|s| SeqView {
            block_table: tables[s],
            context_len: contexts[s] as u32,
            query_len: 1,
        })
        .collect();
    kernels.prepare_decode(&storage, &mut attn, &views)?;
    let mut encoder = device.create_command_encoder(&Default::default());
    encoder.clear_buffer(&out_buf, 0, None); // the host's own pass
    kernels.record_append(&mut encoder, &storage, 0, &append, &k_buf, &v_buf, None);
    kernels.record_decode(&mut encoder, &storage, 0, &attn, &q_buf, &out_buf, None);
    encoder.copy_buffer_to_buffer(&out_buf, 0, &staging, 0, out_bytes);
    queue.submit([encoder.finish()]);

    // 6. The host reads back and checks against the f64 reference (fed f16-rounded K/V).
    staging
        .slice(..)
        .map_async(wgpu::MapMode::Read, |r| r.expect("map staging"));
    device.poll(wgpu::PollType::wait_indefinitely())?;
    let got: Vec<f32> = bytemuck::cast_slice(&staging.slice(..).get_mapped_range()?).to_vec();
    let (k, v) = (
        reference::round_through_f16(&k),
        reference::round_through_f16(&v),
    );
    let tol = Tolerance::for_dtype(KvDtype::F16);
    let (mut worst, mut ok, mut first) = (0.0f64, true, 0);
    for s in 0..2 {
        let (row, kv) = (qh * hd, kvh * hd);
        let range = first * kv..(first + contexts[s]) * kv;
        let shape = AttentionShape {
            q_heads: qh,
            kv_heads: kvh,
            head_dim: hd,
            num_queries: 1,
            num_keys: contexts[s],
        };
        let want = reference::attention(&q[s * row..][..row], &k[range.clone()], &v[range], shape)?;
        let (stats, pass) = reference::check(&got[s * row..][..row], &want, tol);
        worst = worst.max(stats.max_abs);
        ok &= pass;
        first += contexts[s];
    }
    println!(
        "embed on {}: max abs error {worst:.2e} ({})",
        ctx.describe(),
        if ok { "ok" } else { "MISMATCH" }
    );
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}
