//! A generation loop as an app runs it: several sequences prefill their prompts, one is
//! forked from another's prefix, then every step appends each sequence's new token and decodes
//! it, in the app's own encoder, across every layer the cache pools. Sequences are freed at
//! the end.
//!
//! Every attention output is checked against the f64 CPU reference, and the steady-state
//! steps must create no GPU objects. Run: `cargo run --release --example generate`. Exits 1 on
//! a mismatch.

use pagekv::reference::{self, AttentionShape, Tolerance};
use pagekv::{AppendInput, AppendStep, AttentionIo, Capacity, DecodeStep, KvCache, KvCacheConfig};
use pagekv::{KvFormat, ModelGeometry, PrefillStep, SeqId};

const LAYERS: u32 = 2;
const FORMAT: KvFormat = KvFormat::F16;
const STEPS: usize = 6;

/// One sequence's history as the app sees it: per layer, the K/V rows of every token.
struct History {
    id: SeqId,
    tokens: Vec<u32>,
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

/// The app's activation buffers for one step, written each step and bound whole.
struct Activations {
    q: wgpu::Buffer,
    k: wgpu::Buffer,
    v: wgpu::Buffer,
    out: wgpu::Buffer,
    staging: wgpu::Buffer,
}

impl Activations {
    fn new(device: &wgpu::Device, bytes: u64) -> Self {
        let buffer = |label, usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage,
                mapped_at_creation: false,
            })
        };
        let input = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
        Self {
            q: buffer("q", input),
            k: buffer("k", input),
            v: buffer("v", input),
            out: buffer(
                "out",
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            ),
            staging: buffer(
                "staging",
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            ),
        }
    }
}

/// Checks `got` (`[queries][q_heads][head_dim]` for one sequence's newest `queries` tokens)
/// against the reference over the whole history; returns the max abs error or `None`.
fn check(g: &ModelGeometry, h: &History, layer: usize, q: &[f32], got: &[f32]) -> Option<f64> {
    let (qh, kvh, hd) = (g.q_heads as usize, g.kv_heads as usize, g.head_dim as usize);
    let num_queries = q.len() / (qh * hd);
    let shape = AttentionShape {
        q_heads: qh,
        kv_heads: kvh,
        head_dim: hd,
        num_queries,
        num_keys: h.tokens.len(),
    };
    let (k, v) = (
        FORMAT.quantize(&h.k[layer], hd),
        FORMAT.quantize(&h.v[layer], hd),
    );
    let want = reference::attention(q, &k, &v, shape).ok()?;
    let (stats, pass) = reference::check(got, &want, Tolerance::for_format(FORMAT));
    pass.then_some(stats.max_abs)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: first thing in `main`, before any thread exists. (Optional: it only keeps Mesa
    // from printing an XDG_RUNTIME_DIR error on a machine without a desktop session.)
    unsafe { pagekv::gpu::quiet_headless_vulkan() };
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&Default::default()))?;
    let (device, queue) = pollster::block_on(adapter.request_device(&Default::default()))?;
    let g = ModelGeometry::qwen2_5_0_5b();
    let config = KvCacheConfig {
        layers: Some(LAYERS),
        dtype: FORMAT,
        ..KvCacheConfig::new(g.clone(), Capacity::Bytes(16 << 20))
    };
    let mut cache = KvCache::new(&device, &queue, &config)?;
    let (qh, kvh, hd) = (g.q_heads as usize, g.kv_heads as usize, g.head_dim as usize);
    let acts = Activations::new(&device, 64 * (qh * hd) as u64 * 4);
    let (mut append, mut prefill, mut decode) = (
        AppendStep::default(),
        PrefillStep::default(),
        DecodeStep::default(),
    );
    let mut seed = 1u64;
    let mut sample = |n: usize| {
        seed += 1;
        reference::sample_values(n, seed)
    };

    // Sequences 1 and 2 prefill their prompts; sequence 3 is then forked from sequence 1.
    let prompts: [(SeqId, Vec<u32>); 2] = [
        (SeqId(1), (0..21).collect()),
        (SeqId(2), (50..59).collect()),
    ];
    let mut seqs: Vec<History> = Vec::new();
    for (id, _) in &prompts {
        cache.add_sequence(*id)?;
        seqs.push(History {
            id: *id,
            tokens: Vec::new(),
            k: vec![Vec::new(); LAYERS as usize],
            v: vec![Vec::new(); LAYERS as usize],
        });
    }
    let mut worst = 0.0f64;
    let mut failed = false;
    let mut steady_objects = None;
    // Step 0 prefills both prompts; steps 1.. decode one new token per live sequence.
    for step in 0..=STEPS {
        if step == 1 {
            cache.fork(SeqId(1), SeqId(3))?;
            let parent = &seqs[0];
            seqs.push(History {
                id: SeqId(3),
                tokens: parent.tokens.clone(),
                k: parent.k.clone(),
                v: parent.v.clone(),
            });
        }
        // This step's new tokens per sequence.
        let new: Vec<Vec<u32>> = seqs
            .iter()
            .enumerate()
            .map(|(i, h)| match step {
                0 => prompts[i].1.clone(),
                _ => vec![1000 * (i as u32 + 1) + h.tokens.len() as u32],
            })
            .collect();
        let pairs: Vec<(SeqId, &[u32])> =
            seqs.iter().zip(&new).map(|(h, t)| (h.id, &t[..])).collect();
        cache.prepare_append(&mut append, &pairs)?;
        let total: usize = new.iter().map(Vec::len).sum();
        let queries: Vec<(SeqId, u32)> = seqs
            .iter()
            .zip(&new)
            .map(|(h, t)| (h.id, t.len() as u32))
            .collect();
        if step == 0 {
            cache.prepare_prefill(&mut prefill, &queries)?;
        } else {
            let ids: Vec<SeqId> = seqs.iter().map(|h| h.id).collect();
            cache.prepare_decode(&mut decode, &ids)?;
        }
        for (h, t) in seqs.iter_mut().zip(&new) {
            h.tokens.extend_from_slice(t);
        }
        let objects_before = cache.gpu_objects_created();
        for layer in 0..LAYERS {
            let l = layer as usize;
            let (k, v, q) = (
                sample(total * kvh * hd),
                sample(total * kvh * hd),
                sample(total * qh * hd),
            );
            let mut row = 0;
            for (h, t) in seqs.iter_mut().zip(&new) {
                let n = t.len() * kvh * hd;
                h.k[l].extend_from_slice(&k[row..row + n]);
                h.v[l].extend_from_slice(&v[row..row + n]);
                row += n;
            }
            queue.write_buffer(&acts.k, 0, bytemuck::cast_slice(&k));
            queue.write_buffer(&acts.v, 0, bytemuck::cast_slice(&v));
            queue.write_buffer(&acts.q, 0, bytemuck::cast_slice(&q));
            let mut encoder = device.create_command_encoder(&Default::default());
            cache.record_append(
                &mut encoder,
                layer,
                &append,
                AppendInput::whole(&acts.k, &acts.v),
            )?;
            let io = AttentionIo::whole(&acts.q, &acts.out);
            if step == 0 {
                cache.record_prefill(&mut encoder, layer, &prefill, io)?;
            } else {
                cache.record_decode(&mut encoder, layer, &decode, io)?;
            }
            let out_bytes = (q.len() * 4) as u64;
            encoder.copy_buffer_to_buffer(&acts.out, 0, &acts.staging, 0, out_bytes);
            cache.submit(encoder);
            let slice = acts.staging.slice(..out_bytes);
            slice.map_async(wgpu::MapMode::Read, |_| ());
            device.poll(wgpu::PollType::wait_indefinitely())?;
            let got: Vec<f32> = bytemuck::cast_slice(&slice.get_mapped_range()?).to_vec();
            acts.staging.unmap();
            let mut row = 0;
            for (h, t) in seqs.iter().zip(&new) {
                let n = t.len() * qh * hd;
                match check(&g, h, l, &q[row..row + n], &got[row..row + n]) {
                    Some(err) => worst = worst.max(err),
                    None => {
                        eprintln!("MISMATCH: sequence {} layer {layer} step {step}", h.id);
                        failed = true;
                    }
                }
                row += n;
            }
        }
        // From the third decode step on, the step objects and bind groups are warm.
        let created = cache.gpu_objects_created() - objects_before;
        if step >= 3 {
            *steady_objects.get_or_insert(0) += created;
        }
    }
    let stats = cache.stats();
    println!(
        "generate on {}: {} sequences (one forked), {STEPS} decode steps x {LAYERS} layers, \
         {} copy-on-write copies, max abs error {worst:.2e}, GPU objects created in steady \
         steps: {}",
        adapter.get_info().name,
        seqs.len(),
        stats.cow_copies,
        steady_objects.unwrap_or(0)
    );
    for h in &seqs {
        cache.free(h.id)?;
    }
    assert_eq!(cache.manager().num_used_blocks(), 0, "every block released");
    if failed || steady_objects != Some(0) {
        eprintln!("generate: FAILED");
        std::process::exit(1);
    }
    Ok(())
}
