//! Pipeline creation shared by the kernel modules: compiles a variant under an error scope so
//! a driver or validation failure becomes a `GpuError` naming the variant, not a panic.

use super::variant::Variant;
use crate::gpu::{GpuContext, GpuError};

/// Compiles `variant` and creates one compute pipeline per requested entry point.
pub(crate) fn build(
    ctx: &GpuContext,
    variant: &Variant,
    entries: &[&str],
) -> Result<Vec<wgpu::ComputePipeline>, GpuError> {
    if variant.needs_f16() && !ctx.capabilities.shader_f16 {
        return Err(GpuError::Limit(format!(
            "variant {} needs SHADER_F16, which this device lacks",
            variant.name()
        )));
    }
    let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let module = ctx
        .device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(&variant.name()),
            source: wgpu::ShaderSource::Wgsl(variant.source().into()),
        });
    let pipelines = entries
        .iter()
        .map(|entry| {
            ctx.device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(&format!("{}::{entry}", variant.name())),
                    layout: None,
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache: None,
                })
        })
        .collect();
    if let Some(err) = pollster::block_on(scope.pop()) {
        return Err(GpuError::Device(format!(
            "building {} failed: {err}",
            variant.name()
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

/// Creates a bind group from (binding, buffer) pairs against `pipeline`'s layout.
pub(crate) fn bind(
    ctx: &GpuContext,
    pipeline: &wgpu::ComputePipeline,
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
    ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &entries,
    })
}
