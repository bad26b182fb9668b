//! Every generated WGSL variant must parse, validate and translate to SPIR-V, MSL, HLSL and
//! GLSL with naga, so Metal/DX12/GL breakage shows up without their hardware.

use pagekv::kernels::{WgslModule, portability};

/// The core's attention variants, plus the stress tool's kernels when it is built.
fn every_module() -> Vec<WgslModule> {
    #[cfg(feature = "tool")]
    return pagekv::tool_kernels::all_modules();
    #[cfg(not(feature = "tool"))]
    return pagekv::kernels::all_modules();
}

#[test]
fn every_variant_validates_and_translates() {
    let variants = every_module();
    assert!(
        variants.len() >= 40,
        "expected the full variant set, got {}",
        variants.len()
    );
    // Decode, prefill and combine come in both reduction forms; the subgroup form must
    // translate for every backend too (GL, MSL and HLSL have subgroup/wave operations).
    let subgroup: Vec<&WgslModule> = variants.iter().filter(|v| v.needs_subgroups).collect();
    assert!(
        subgroup.len() >= 20
            && ["decode_", "prefill_", "combine_"].iter().all(|f| subgroup
                .iter()
                .any(|v| v.name.starts_with(f) && v.name.ends_with("_sg"))),
        "expected subgroup variants of decode, prefill and combine, got {}",
        subgroup.len()
    );
    let mut failures = Vec::new();
    for variant in &variants {
        match portability::check(variant) {
            Err(e) => failures.push(e),
            Ok(report) => {
                for (target, result) in &report.targets {
                    if let Err(e) = result
                        && !e.starts_with("not applicable")
                    {
                        failures.push(format!("{} -> {target}: {e}", report.name));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `TileShape::bytes`, from which tile shapes are chosen against the device's
/// `max_compute_workgroup_storage_size`, must be what the tiled shaders really declare: an
/// undercount would build a pipeline the device refuses, an overcount would pick smaller tiles
/// than fit. Checked for every tiled variant, by summing the sizes of the module's workgroup
/// variables as naga lays them out.
#[test]
fn tile_footprints_match_the_declared_workgroup_memory() {
    let tiled: Vec<_> = pagekv::kernels::Variant::all()
        .into_iter()
        .filter_map(|v| v.tiles.map(|t| (v, t)))
        .collect();
    assert!(tiled.len() >= 20, "only {} tiled variants", tiled.len());
    for (variant, tiles) in tiled {
        let module = variant.module();
        let parsed = naga::front::wgsl::parse_str(&module.source)
            .unwrap_or_else(|e| panic!("{}: {e}", module.name));
        let mut layouter = naga::proc::Layouter::default();
        layouter
            .update(parsed.to_ctx())
            .unwrap_or_else(|e| panic!("{}: {e}", module.name));
        let declared: u32 = parsed
            .global_variables
            .iter()
            .filter(|(_, g)| g.space == naga::AddressSpace::WorkGroup)
            .map(|(_, g)| layouter[g.ty].size)
            .sum();
        assert_eq!(
            declared,
            tiles.bytes(variant.head_dim),
            "{}: the shader declares {declared} bytes of workgroup memory",
            module.name
        );
    }
}
