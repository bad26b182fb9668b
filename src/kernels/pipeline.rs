//! Pipeline creation shared by the kernel modules: compiles a module under an error scope so
//! a driver or validation failure becomes a `GpuError` naming the module, not a panic.

use super::layouts::{self, Bindings};
use super::variant::WgslModule;
use crate::gpu::{GpuContext, GpuError};

/// A compute pipeline and its bind group layout, made once at build time so recording never
/// asks the device for a layout again.
#[derive(Debug)]
pub(crate) struct ComputeKernel {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

impl ComputeKernel {
    /// Sets this pipeline on `pass`.
    pub(crate) fn set(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
    }
}

/// The runtime checks wgpu compiles into pagekv's shaders: all of them except loop bounding.
/// Loop bounding gives every loop a hidden iteration counter so that an endless loop cannot
/// hang the device; vendor compilers then cannot tell a loop's trip count, so they stop
/// unrolling the head-dim loops and keeping their private arrays in registers (gfx-rs/wgpu
/// issue 7698 reports 0.1 ms pipelines taking 10 ms). Measured on lavapipe: the tiled decode
/// and prefill run 8-10% faster without it, and compile in a second instead of up to a minute
/// on GL; the flat kernels, whose hot code is unrolled at composition, gain 0-6%. Bounds
/// checks stay: an embedding app's block tables come from its own bookkeeping, and a bad one
/// must read clamped data, not another allocation.
fn runtime_checks() -> wgpu::ShaderRuntimeChecks {
    let mut checks = wgpu::ShaderRuntimeChecks::checked();
    checks.force_loop_bounding = false;
    checks
}

/// Compiles `module` and creates one compute pipeline per entry point, each with its explicit
/// bind group layout ([`super::layouts`]); wgpu checks the layout against the shader.
pub(crate) fn build(
    ctx: &GpuContext,
    module: &WgslModule,
    entries: &[(&str, Bindings)],
) -> Result<Vec<ComputeKernel>, GpuError> {
    build_with(ctx, module, entries.iter().map(|&(e, b)| (e, Some(b))))
}

/// Like [`build`] with layouts derived from the shader: the stress tool's own kernels, whose
/// bindings no embedding app ever sees.
#[cfg(feature = "tool")]
pub(crate) fn build_derived(
    ctx: &GpuContext,
    module: &WgslModule,
    entries: &[&str],
) -> Result<Vec<ComputeKernel>, GpuError> {
    build_with(ctx, module, entries.iter().map(|&e| (e, None)))
}

fn build_with<'a>(
    ctx: &GpuContext,
    module: &WgslModule,
    entries: impl Iterator<Item = (&'a str, Option<Bindings>)>,
) -> Result<Vec<ComputeKernel>, GpuError> {
    if module.needs_f16 && !ctx.capabilities.shader_f16 {
        return Err(GpuError::MissingFeature {
            feature: "SHADER_F16",
            needed_by: format!("shader variant {}", module.name),
        });
    }
    if module.needs_subgroups && !super::Reductions::supported(ctx) {
        return Err(GpuError::MissingFeature {
            feature: "SUBGROUP (subgroups of at least 8 lanes)",
            needed_by: format!("shader variant {}", module.name),
        });
    }
    let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let descriptor = wgpu::ShaderModuleDescriptor {
        label: Some(&module.name),
        source: wgpu::ShaderSource::Wgsl(module.source.as_str().into()),
    };
    // SAFETY: the only check turned off is loop bounding (see `runtime_checks`), and every
    // loop in pagekv's shaders ends: each steps a counter by at least one towards a bound the
    // loop does not change (a constant or a parameter; key positions stay far below 2^32),
    // or doubles a mask up to a constant of at most 64. Bounds and division checks stay on.
    let compiled = unsafe {
        ctx.device
            .create_shader_module_trusted(descriptor, runtime_checks())
    };
    let pipelines = entries
        .map(|(entry, bindings)| {
            let label = format!("{}::{entry}", module.name);
            let explicit = bindings.map(|bindings| {
                let layout =
                    ctx.device
                        .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                            label: Some(&label),
                            entries: &layouts::entries(bindings),
                        });
                let pipeline_layout =
                    ctx.device
                        .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                            label: Some(&label),
                            bind_group_layouts: &[Some(&layout)],
                            immediate_size: 0,
                        });
                (layout, pipeline_layout)
            });
            let pipeline = ctx
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(&label),
                    layout: explicit
                        .as_ref()
                        .map(|(_, pipeline_layout)| pipeline_layout),
                    module: &compiled,
                    entry_point: Some(entry),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        // Every kernel writes each workgroup variable before any thread reads
                        // it (behind a barrier where threads share it), so clearing workgroup
                        // memory at every workgroup's start would only cost time.
                        zero_initialize_workgroup_memory: false,
                        ..Default::default()
                    },
                    cache: None,
                });
            let layout = match explicit {
                Some((layout, _)) => layout,
                None => pipeline.get_bind_group_layout(0),
            };
            ComputeKernel { pipeline, layout }
        })
        .collect();
    if let Some(err) = pollster::block_on(scope.pop()) {
        return Err(GpuError::Device(format!(
            "building {} failed: {err}",
            module.name
        )));
    }
    Ok(pipelines)
}

/// Splits `count` workgroups over x and y so neither exceeds the per-dimension limit.
pub(crate) fn grid_2d(count: u32, max_per_dim: u32) -> (u32, u32) {
    if count <= max_per_dim {
        (count.max(1), 1)
    } else {
        (max_per_dim, count.div_ceil(max_per_dim))
    }
}

/// Creates a bind group from (binding, resource) pairs against `kernel`'s layout. Every bind
/// group pagekv makes goes through here, so [`GpuContext::objects_created`] counts them.
pub(crate) fn bind(
    ctx: &GpuContext,
    kernel: &ComputeKernel,
    label: &str,
    entries: &[(u32, wgpu::BindingResource<'_>)],
) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry<'_>> = entries
        .iter()
        .map(|(binding, resource)| wgpu::BindGroupEntry {
            binding: *binding,
            resource: resource.clone(),
        })
        .collect();
    ctx.count_created();
    ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout: &kernel.layout,
        entries: &entries,
    })
}
