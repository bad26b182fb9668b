//! The generate family: deterministic synthetic Q/K/V written straight into GPU buffers, so
//! the stress engine moves no activations over the bus. [`synthetic_value`] is the bit-exact
//! CPU mirror used for spot checks against the reference.

use super::ToolKernel;
use crate::cache::ModelGeometry;
use crate::gpu::{DeviceLimit, GpuContext, GpuError, LimitExceeded};
use crate::kernels::batch::GrowBuffer;
use crate::kernels::bind_cache::{BindCache, RangeKey};
use crate::kernels::pipeline::ComputeKernel;
use crate::kernels::{WgslModule, pipeline};
use bytemuck::{Pod, Zeroable};

/// Mirror of `GenerateParams` in shaders/generate.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq)]
pub struct GenerateParams {
    /// Tokens in the step.
    pub num_tokens: u32,
    /// Layer whose Q/K/V are generated.
    pub layer: u32,
    /// Query heads.
    pub q_heads: u32,
    /// KV heads.
    pub kv_heads: u32,
    /// Threads along x of the 2-D grid.
    pub grid_x_threads: u32,
    /// Padding to 32 bytes.
    pub _pad: [u32; 3],
}

/// Which tensor a synthetic value belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tensor {
    /// Query (depends on the request seed).
    Q = 0,
    /// Key (depends only on layer, head, position and token).
    K = 1,
    /// Value (same dependence as K).
    V = 2,
}

/// One token of a step: what the generator hashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenKey {
    /// Token id.
    pub token: u32,
    /// Position in its sequence.
    pub position: u32,
    /// Request seed (only Q uses it).
    pub seed: u64,
}

fn mix32(x: u32) -> u32 {
    let mut x = x;
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// The exact value the GPU generator writes for element `dim` of `tensor`'s row `head`.
pub fn synthetic_value(tensor: Tensor, layer: u32, head: u32, key: TokenKey, dim: u32) -> f32 {
    let seed = if tensor == Tensor::Q { key.seed } else { 0 };
    let mut h = mix32(tensor as u32 ^ 0x9e37_79b9);
    for word in [
        layer,
        head,
        key.position,
        key.token,
        seed as u32,
        (seed >> 32) as u32,
    ] {
        h = mix32(h ^ word);
    }
    let bits = mix32(h ^ dim) >> 8;
    bits as f32 * (2.0 / 16_777_216.0) - 1.0
}

/// CPU copy of a whole step's tensor, `[tokens][heads][head_dim]`, for spot checks.
pub fn synthetic_rows(
    tensor: Tensor,
    layer: u32,
    heads: u32,
    head_dim: u32,
    keys: &[TokenKey],
) -> Vec<f32> {
    let mut out = Vec::with_capacity(keys.len() * (heads * head_dim) as usize);
    for &key in keys {
        for head in 0..heads {
            for dim in 0..head_dim {
                out.push(synthetic_value(tensor, layer, head, key, dim));
            }
        }
    }
    out
}

/// How the generator spreads its work over invocations. Both write the same values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GenerateLayout {
    /// One invocation per four-value slice (`generate`): neighbouring invocations write
    /// neighbouring slices, as GPUs want.
    Slices,
    /// One invocation per row (`generate_rows`): each row's seven hashes, token load and
    /// placement divisions once instead of once per slice. On a CPU adapter those are
    /// per-lane scalar work; lavapipe, 11 scenarios at the `default` preset: generate GPU
    /// time of scenario 11 623-747 ms with slices, 175-181 ms with rows.
    Rows,
}

impl GenerateLayout {
    /// Rows on CPU adapters, slices elsewhere.
    pub fn for_device(ctx: &GpuContext) -> Self {
        match ctx.info.device_type {
            wgpu::DeviceType::Cpu => Self::Rows,
            _ => Self::Slices,
        }
    }
}

/// Compiled generator plus its reusable step buffers.
pub struct GenerateKernel {
    pipeline: ComputeKernel,
    /// The module built.
    pub module: WgslModule,
    /// Four-value slices one invocation writes (1, or the head dim's for rows).
    slices_per_invocation: u32,
}

/// A generator bind group's identity: the layer and the Q, K and V buffers it writes.
type GroupKey = (u32, [RangeKey; 3]);

/// Reusable per-step inputs of the generator.
#[derive(Default, Debug)]
pub struct GenerateBatch {
    tokens: GrowBuffer,
    uniforms: GrowBuffer,
    stride: u64,
    grid: (u32, u32),
    /// One bind group per layer and output buffers, so steady-state steps make none.
    groups: BindCache<GroupKey>,
    /// Tokens in the prepared step.
    pub count: u32,
}

impl GenerateKernel {
    /// Builds the generator for `head_dim` in the adapter's layout
    /// ([`GenerateLayout::for_device`]).
    pub fn new(ctx: &GpuContext, head_dim: u32) -> Result<Self, GpuError> {
        Self::with_layout(ctx, head_dim, GenerateLayout::for_device(ctx))
    }

    /// Builds the generator for `head_dim` in `layout` (tests run both on every adapter).
    pub fn with_layout(
        ctx: &GpuContext,
        head_dim: u32,
        layout: GenerateLayout,
    ) -> Result<Self, GpuError> {
        let module = ToolKernel::Generate.module(head_dim);
        let (entry, slices_per_invocation) = match layout {
            GenerateLayout::Rows => ("generate_rows", head_dim / 4),
            GenerateLayout::Slices => ("generate", 1),
        };
        let pipeline = pipeline::build_derived(ctx, &module, &[entry])?.remove(0);
        Ok(Self {
            pipeline,
            module,
            slices_per_invocation,
        })
    }

    /// Uploads a step's tokens and one params block per layer.
    pub fn prepare(
        &self,
        ctx: &GpuContext,
        geometry: &ModelGeometry,
        layers: u32,
        batch: &mut GenerateBatch,
        keys: &[TokenKey],
    ) -> Result<(), GpuError> {
        let words: Vec<[u32; 4]> = keys
            .iter()
            .map(|k| [k.token, k.position, k.seed as u32, (k.seed >> 32) as u32])
            .collect();
        let threads = keys.len() as u64
            * (geometry.q_heads + 2 * geometry.kv_heads) as u64
            * (geometry.head_dim / 4 / self.slices_per_invocation) as u64;
        let max_dim = ctx.capabilities.max_workgroups_per_dimension;
        let workgroups = threads.div_ceil(64);
        if workgroups > max_dim as u64 * max_dim as u64 {
            return Err(GpuError::Limit(LimitExceeded {
                what: format!("generating {} tokens in one dispatch", keys.len()),
                limit: DeviceLimit::DispatchWorkgroups,
                needed: workgroups,
                allowed: max_dim as u64 * max_dim as u64,
                remedy: "lower the step token budget",
            }));
        }
        let (x, y) = pipeline::grid_2d(workgroups as u32, max_dim);
        let params: Vec<GenerateParams> = (0..layers)
            .map(|layer| GenerateParams {
                num_tokens: keys.len() as u32,
                layer,
                q_heads: geometry.q_heads,
                kv_heads: geometry.kv_heads,
                grid_x_threads: x * 64,
                _pad: [0; 3],
            })
            .collect();
        batch.tokens.write(
            ctx,
            "pagekv generate tokens",
            wgpu::BufferUsages::STORAGE,
            bytemuck::cast_slice(&words),
        );
        let (bytes, stride) = crate::kernels::batch::pack_uniforms(ctx, &params);
        batch.uniforms.write(
            ctx,
            "pagekv generate params",
            wgpu::BufferUsages::UNIFORM,
            &bytes,
        );
        batch.stride = stride;
        batch.grid = (x, y);
        batch.count = keys.len() as u32;
        batch
            .groups
            .sync(batch.tokens.generation() + batch.uniforms.generation());
        Ok(())
    }

    /// Records generation of `layer`'s Q (`[tokens][q_heads][hd]`), K and V
    /// (`[tokens][kv_heads][hd]`).
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        ctx: &GpuContext,
        pass: &mut wgpu::ComputePass<'_>,
        layer: u32,
        batch: &GenerateBatch,
        q: &wgpu::Buffer,
        k: &wgpu::Buffer,
        v: &wgpu::Buffer,
    ) {
        if batch.count == 0 {
            return;
        }
        let whole = |b: &wgpu::Buffer| -> RangeKey { (b.clone(), 0, None) };
        let key = (layer, [whole(q), whole(k), whole(v)]);
        let group = batch.groups.get(key, || {
            pipeline::bind(
                ctx,
                &self.pipeline,
                "pagekv generate",
                &[
                    (
                        0,
                        crate::kernels::batch::uniform_at::<GenerateParams>(
                            batch.uniforms.get(),
                            batch.stride,
                            layer,
                        ),
                    ),
                    (1, batch.tokens.get().as_entire_binding()),
                    (2, q.as_entire_binding()),
                    (3, k.as_entire_binding()),
                    (4, v.as_entire_binding()),
                ],
            )
        });
        self.pipeline.set(pass);
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups(batch.grid.0, batch.grid.1, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_deterministic_and_in_range() {
        let key = TokenKey {
            token: 5,
            position: 9,
            seed: 77,
        };
        let a = synthetic_value(Tensor::K, 1, 0, key, 3);
        assert_eq!(a, synthetic_value(Tensor::K, 1, 0, key, 3));
        assert!((-1.0..1.0).contains(&a));
        // K ignores the seed, Q does not.
        let other = TokenKey { seed: 78, ..key };
        assert_eq!(a, synthetic_value(Tensor::K, 1, 0, other, 3));
        assert_ne!(
            synthetic_value(Tensor::Q, 1, 0, key, 3),
            synthetic_value(Tensor::Q, 1, 0, other, 3)
        );
    }
}
