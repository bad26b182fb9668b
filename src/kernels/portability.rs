//! naga validation and cross-compilation of every variant, so Metal, DX12 and GL breakage
//! shows up on a machine that has none of them. Used by the portability test and by
//! `pagekv shaders --check`.

use super::variant::WgslModule;

/// Targets a variant is translated to.
pub const TARGETS: [&str; 4] = ["spirv", "msl", "hlsl", "glsl"];

/// Outcome of checking one variant.
#[derive(Debug, Clone)]
pub struct PortabilityReport {
    /// The variant's name.
    pub name: String,
    /// Per target: `Ok(bytes of output)` or the translation error. A target that cannot express
    /// the variant by design (native f16 in GLSL) is `Err` starting with "not applicable".
    pub targets: Vec<(&'static str, Result<usize, String>)>,
}

/// Parses and validates `variant` with naga, returning the module and its info.
pub fn validate(variant: &WgslModule) -> Result<(naga::Module, naga::valid::ModuleInfo), String> {
    let source = &variant.source;
    let module = naga::front::wgsl::parse_str(source)
        .map_err(|e| format!("{}: {}", variant.name, e.emit_to_string(source)))?;
    // pack2x16float needs SHADER_FLOAT16_IN_FLOAT32, which wgpu grants on Vulkan, GL, Metal
    // and DX12 alike (DownlevelFlags::SHADER_F16_IN_F32).
    let mut caps =
        naga::valid::Capabilities::default() | naga::valid::Capabilities::SHADER_FLOAT16_IN_FLOAT32;
    if variant.needs_f16 {
        caps |= naga::valid::Capabilities::SHADER_FLOAT16;
    }
    if variant.needs_subgroups {
        caps |= naga::valid::Capabilities::SUBGROUP;
    }
    let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
        .validate(&module)
        .map_err(|e| format!("{}: {}", variant.name, e.emit_to_string(source)))?;
    Ok((module, info))
}

/// Validates `variant` and translates it to SPIR-V, MSL, HLSL and GLSL.
pub fn check(variant: &WgslModule) -> Result<PortabilityReport, String> {
    let (module, info) = validate(variant)?;
    let mut targets = Vec::new();

    let spv =
        naga::back::spv::write_vec(&module, &info, &naga::back::spv::Options::default(), None)
            .map(|words| words.len() * 4)
            .map_err(|e| e.to_string());
    targets.push(("spirv", spv));

    let msl_options = naga::back::msl::Options {
        lang_version: (2, 4),
        ..Default::default()
    };
    let msl = naga::back::msl::write_string(
        &module,
        &info,
        &msl_options,
        &naga::back::msl::PipelineOptions::default(),
    )
    .map(|(text, _)| text.len())
    .map_err(|e| e.to_string());
    targets.push(("msl", msl));

    let hlsl_options = naga::back::hlsl::Options {
        shader_model: naga::back::hlsl::ShaderModel::V6_2,
        ..Default::default()
    };
    let hlsl_pipeline = naga::back::hlsl::PipelineOptions::default();
    let mut hlsl_text = String::new();
    let hlsl = naga::back::hlsl::Writer::new(&mut hlsl_text, &hlsl_options, &hlsl_pipeline)
        .write(&module, &info, None)
        .map(|_| hlsl_text.len())
        .map_err(|e| e.to_string());
    targets.push(("hlsl", hlsl));

    for entry in module.entry_points.iter().map(|e| e.name.as_str()) {
        let glsl = if variant.needs_f16 {
            Err("not applicable: GLSL has no f16 storage in wgpu's GL backend; GL uses the packed variant".to_string())
        } else {
            translate_glsl(&module, &info, entry)
        };
        targets.push(("glsl", glsl));
    }
    Ok(PortabilityReport {
        name: variant.name.clone(),
        targets,
    })
}

fn translate_glsl(
    module: &naga::Module,
    info: &naga::valid::ModuleInfo,
    entry: &str,
) -> Result<usize, String> {
    let options = naga::back::glsl::Options {
        version: naga::back::glsl::Version::Desktop(450),
        ..Default::default()
    };
    let pipeline = naga::back::glsl::PipelineOptions {
        shader_stage: naga::ShaderStage::Compute,
        entry_point: entry.to_string(),
        multiview: None,
    };
    let mut text = String::new();
    let mut writer = naga::back::glsl::Writer::new(
        &mut text,
        module,
        info,
        &options,
        &pipeline,
        naga::proc::BoundsCheckPolicies::default(),
    )
    .map_err(|e| e.to_string())?;
    writer.write().map_err(|e| e.to_string())?;
    Ok(text.len())
}
