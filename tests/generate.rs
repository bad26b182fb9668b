//! The stress engine's synthetic Q/K/V generator against its CPU mirror, bit for bit, in both
//! work layouts on every adapter present: CPU adapters run rows by default and GPUs slices, so
//! each layout is also forced here where it would not otherwise run.

#![cfg(feature = "tool")]

mod common;

use pagekv::cache::ModelGeometry;
use pagekv::gpu::{GpuContext, read_buffer_f32};
use pagekv::tool_kernels::generate::{
    GenerateBatch, GenerateKernel, GenerateLayout, Tensor, TokenKey, synthetic_rows,
};

fn buffer(ctx: &GpuContext, floats: u64) -> wgpu::Buffer {
    ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("generate test output"),
        size: floats * 4,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    })
}

/// Generates layer `layer` of `keys` on the GPU and returns Q, K and V.
fn generate(
    ctx: &GpuContext,
    kernel: &GenerateKernel,
    geometry: &ModelGeometry,
    layer: u32,
    keys: &[TokenKey],
) -> [Vec<f32>; 3] {
    let mut batch = GenerateBatch::default();
    kernel
        .prepare(ctx, geometry, geometry.layers, &mut batch, keys)
        .expect("prepare");
    let n = keys.len() as u64;
    let hd = geometry.head_dim as u64;
    let sizes = [
        n * geometry.q_heads as u64 * hd,
        n * geometry.kv_heads as u64 * hd,
        n * geometry.kv_heads as u64 * hd,
    ];
    let [q, k, v] = sizes.map(|floats| buffer(ctx, floats));
    let mut encoder = ctx.device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        kernel.record(ctx, &mut pass, layer, &batch, &q, &k, &v);
    }
    ctx.queue.submit([encoder.finish()]);
    [(&q, sizes[0]), (&k, sizes[1]), (&v, sizes[2])]
        .map(|(b, floats)| read_buffer_f32(ctx, b, floats as usize).expect("readback"))
}

#[test]
fn both_layouts_write_exactly_the_cpu_mirror() {
    // Three heads per group and head dim 80 (20 slices, not a power of two), and a 7B-like
    // shape; keys with repeated tokens at other positions and a seed above 32 bits.
    let geometries = [
        ModelGeometry::new("q6kv2d80", 3, 6, 2, 80),
        ModelGeometry::new("q28kv4d128", 2, 28, 4, 128),
    ];
    let keys: Vec<TokenKey> = (0..37)
        .map(|i| TokenKey {
            token: (i * 7919) % 13,
            position: i * 3 + 1,
            seed: 0x1_0000_0005 + (i as u64 % 3),
        })
        .collect();
    for ctx in common::contexts() {
        for geometry in &geometries {
            for layout in [GenerateLayout::Slices, GenerateLayout::Rows] {
                let kernel = GenerateKernel::with_layout(&ctx, geometry.head_dim, layout)
                    .expect("build the generator");
                let layer = geometry.layers - 1;
                let gpu = generate(&ctx, &kernel, geometry, layer, &keys);
                let heads = [geometry.q_heads, geometry.kv_heads, geometry.kv_heads];
                for ((tensor, heads), got) in [Tensor::Q, Tensor::K, Tensor::V]
                    .into_iter()
                    .zip(heads)
                    .zip(&gpu)
                {
                    let want = synthetic_rows(tensor, layer, heads, geometry.head_dim, &keys);
                    assert_eq!(
                        got.len(),
                        want.len(),
                        "{layout:?} {tensor:?} on {}",
                        ctx.describe()
                    );
                    let first_difference = got
                        .iter()
                        .zip(&want)
                        .position(|(g, w)| g.to_bits() != w.to_bits());
                    assert_eq!(
                        first_difference,
                        None,
                        "{layout:?} {tensor:?} of {} on {}",
                        geometry.name,
                        ctx.describe()
                    );
                }
            }
        }
    }
}

#[test]
fn steady_state_steps_make_no_bind_groups() {
    // The engine generates every layer of every step into the same Q/K/V buffers: after the
    // first step, later ones must find their bind groups made.
    let geometry = ModelGeometry::new("q14kv2d64", 2, 14, 2, 64);
    let keys: Vec<TokenKey> = (0..16)
        .map(|i| TokenKey {
            token: i,
            position: i,
            seed: 9,
        })
        .collect();
    for ctx in common::contexts() {
        let kernel = GenerateKernel::new(&ctx, geometry.head_dim).expect("build the generator");
        let mut batch = GenerateBatch::default();
        let floats = |heads: u32| (keys.len() as u32 * heads * geometry.head_dim) as u64;
        let q = buffer(&ctx, floats(geometry.q_heads));
        let (k, v) = (
            buffer(&ctx, floats(geometry.kv_heads)),
            buffer(&ctx, floats(geometry.kv_heads)),
        );
        let mut step = |made: &str| {
            kernel
                .prepare(&ctx, &geometry, geometry.layers, &mut batch, &keys)
                .expect("prepare");
            let before = ctx.objects_created();
            let mut encoder = ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                for layer in 0..geometry.layers {
                    kernel.record(&ctx, &mut pass, layer, &batch, &q, &k, &v);
                }
            }
            ctx.queue.submit([encoder.finish()]);
            let created = ctx.objects_created() - before;
            eprintln!("{made}: {created} objects on {}", ctx.describe());
            created
        };
        assert_eq!(step("first step"), geometry.layers as u64);
        assert_eq!(step("second step"), 0, "on {}", ctx.describe());
        assert_eq!(step("third step"), 0, "on {}", ctx.describe());
    }
}
