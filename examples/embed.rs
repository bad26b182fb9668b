//! Embedding pagekv in a wgpu app that owns its device, queue, buffers and encoder.
//!
//! The app keeps K, V and Q for one step in a single activation buffer of its own and lends
//! pagekv ranges of it. pagekv chooses every block; the app only names sequences. Append and
//! decode go into the app's encoder next to its own commands, in one submission, and the
//! result is checked against the f64 CPU reference.
//!
//! Run: `cargo run --release --example embed [FORMAT]` (f16 by default; any of f32, f16,
//! int8, int4, fp8-e4m3, fp8-e5m2). Exits 1 when the GPU result differs.

use pagekv::reference::{self, AttentionShape, Tolerance};
use pagekv::{AppendInput, AppendStep, AttentionIo, Capacity, DecodeStep, KvCache, KvCacheConfig};
use pagekv::{KvFormat, ModelGeometry, SeqId};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: first thing in `main`, before any thread exists. (Optional: it only keeps Mesa
    // from printing an XDG_RUNTIME_DIR error on a machine without a desktop session.)
    unsafe { pagekv::gpu::quiet_headless_vulkan() };
    // The app's own device; pagekv needs no optional feature.
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&Default::default()))?;
    let (device, queue) = pollster::block_on(adapter.request_device(&Default::default()))?;

    // One layer of Qwen2.5-0.5B's KV geometry, room for 64 blocks of 16 tokens, stored in
    // the format named on the command line.
    let dtype = match std::env::args().nth(1) {
        None => KvFormat::F16,
        Some(name) => KvFormat::parse(&name).ok_or_else(|| {
            format!(
                "'{name}' is not a KV format; use one of {}",
                KvFormat::names()
            )
        })?,
    };
    let geometry = ModelGeometry::qwen2_5_0_5b();
    let config = KvCacheConfig {
        layers: Some(1),
        dtype,
        ..KvCacheConfig::new(geometry.clone(), Capacity::Blocks(64))
    };
    let mut cache = KvCache::new(&device, &queue, &config)?;

    // Two sequences: a 37-token prompt and a 5-token one (token ids feed prefix caching).
    let prompts: [Vec<u32>; 2] = [(0..37).collect(), (100..105).collect()];
    let ids = [SeqId(1), SeqId(2)];
    for id in ids {
        cache.add_sequence(id)?;
    }
    let mut append = AppendStep::default();
    let new_tokens: Vec<(SeqId, &[u32])> = ids
        .iter()
        .copied()
        .zip(prompts.iter().map(|p| &p[..]))
        .collect();
    cache.prepare_append(&mut append, &new_tokens)?;
    let mut decode = DecodeStep::default();
    cache.prepare_decode(&mut decode, &ids)?;

    // The app's activations: K, V and the two decode queries, in one buffer at aligned offsets.
    let (qh, kvh, hd) = (
        geometry.q_heads as usize,
        geometry.kv_heads as usize,
        geometry.head_dim as usize,
    );
    let tokens = append.tokens() as usize;
    let (k, v) = (
        reference::sample_values(tokens * kvh * hd, 1),
        reference::sample_values(tokens * kvh * hd, 2),
    );
    let q = reference::sample_values(ids.len() * qh * hd, 3);
    let align = device.limits().min_storage_buffer_offset_alignment as u64;
    let at = |bytes: usize| (bytes as u64).next_multiple_of(align);
    let (k_at, v_at, q_at) = (0, at(k.len() * 4), at(k.len() * 4) + at(v.len() * 4));
    let arena = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("app activations"),
        size: q_at + at(q.len() * 4),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    for (offset, values) in [(k_at, &k), (v_at, &v), (q_at, &q)] {
        queue.write_buffer(&arena, offset, bytemuck::cast_slice(values));
    }
    let range = |offset: u64, values: &[f32]| wgpu::BufferBinding {
        buffer: &arena,
        offset,
        size: std::num::NonZeroU64::new(values.len() as u64 * 4),
    };
    let out_bytes = (q.len() * 4) as u64;
    let out = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("app attention out"),
        size: out_bytes,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("app staging"),
        size: out_bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });

    // pagekv's passes in the app's encoder, between the app's own commands.
    let mut encoder = device.create_command_encoder(&Default::default());
    encoder.clear_buffer(&out, 0, None);
    let kv_in = AppendInput {
        k: range(k_at, &k),
        v: range(v_at, &v),
    };
    cache.record_append(&mut encoder, 0, &append, kv_in)?;
    let io = AttentionIo {
        q: range(q_at, &q),
        out: out.as_entire_buffer_binding(),
    };
    cache.record_decode(&mut encoder, 0, &decode, io)?;
    encoder.copy_buffer_to_buffer(&out, 0, &staging, 0, out_bytes);
    cache.submit(encoder);

    staging.slice(..).map_async(wgpu::MapMode::Read, |_| ());
    device.poll(wgpu::PollType::wait_indefinitely())?;
    let got: Vec<f32> = bytemuck::cast_slice(&staging.slice(..).get_mapped_range()?).to_vec();

    // The f64 reference, fed the K/V the cache holds (f16-rounded), so the tolerance covers
    // the kernels' arithmetic, not the storage format.
    let (k, v) = (config.dtype.quantize(&k, hd), config.dtype.quantize(&v, hd));
    let (mut first, mut worst, mut ok) = (0, 0.0f64, true);
    for (s, prompt) in prompts.iter().enumerate() {
        let (row, kv, n) = (qh * hd, kvh * hd, prompt.len());
        let shape = AttentionShape {
            q_heads: qh,
            kv_heads: kvh,
            head_dim: hd,
            num_queries: 1,
            num_keys: n,
        };
        let kv_range = first * kv..(first + n) * kv;
        let want = reference::attention(
            &q[s * row..][..row],
            &k[kv_range.clone()],
            &v[kv_range],
            shape,
        )?;
        let (stats, pass) = reference::check(
            &got[s * row..][..row],
            &want,
            Tolerance::for_format(config.dtype),
        );
        worst = worst.max(stats.max_abs);
        ok &= pass;
        first += n;
    }
    let info = adapter.get_info();
    println!(
        "embed on {}: {} blocks used, max abs error {worst:.2e} ({})",
        pagekv::gpu::adapter_label(&info.name, info.backend),
        cache.manager().num_used_blocks(),
        if ok { "ok" } else { "MISMATCH" }
    );
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}
