//! Pipeline creation shared by the kernel modules: compiles a module under an error scope so
//! a driver or validation failure becomes a `GpuError` naming the module, not a panic.

use super::variant::WgslModule;
use crate::gpu::{GpuContext, GpuError};

/// A compute pipeline and its bind group layout, fetched once at build time so recording
/// never asks the device for a layout again.
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

/// Compiles `module` and creates one compute pipeline per requested entry point.
pub(crate) fn build(
    ctx: &GpuContext,
    module: &WgslModule,
    entries: &[&str],
) -> Result<Vec<ComputeKernel>, GpuError> {
    if module.needs_f16 && !ctx.capabilities.shader_f16 {
        return Err(GpuError::MissingFeature {
            feature: "SHADER_F16",
            needed_by: format!("shader variant {}", module.name),
        });
    }
    let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let compiled = ctx
        .device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(&module.name),
            source: wgpu::ShaderSource::Wgsl(module.source.as_str().into()),
        });
    let pipelines = entries
        .iter()
        .map(|entry| {
            ctx.device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(&format!("{}::{entry}", module.name)),
                    layout: None,
                    module: &compiled,
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache: None,
                })
        })
        .map(|pipeline| ComputeKernel {
            layout: pipeline.get_bind_group_layout(0),
            pipeline,
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
