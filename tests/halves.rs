//! Both f16-to-f32 conversions the attention kernels compile (`HalfDecode`), on every adapter
//! present, over all 65,536 half bit patterns against the `half` crate: the integer form bit
//! for bit (NaN payloads, both zeros, subnormals and infinities included), the built-in form
//! bit for bit on every non-NaN half and NaN for every NaN; and every FP8 code through the
//! codec's `decode4` in either form.

mod common;

use half::f16;
use pagekv::gpu::GpuContext;
use pagekv::kernels::HalfDecode;
use wgpu::util::DeviceExt;

/// Each invocation converts two words (four halves) and writes the f32 bits it got.
const HARNESS: &str = "
@group(0) @binding(0) var<storage, read> words: array<vec2<u32>>;
@group(0) @binding(1) var<storage, read_write> bits: array<vec4<u32>>;

@compute @workgroup_size(64)
fn convert(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < arrayLength(&words)) {
        bits[id.x] = bitcast<vec4<u32>>(halves4(words[id.x]));
    }
}
";

/// Every half bit pattern in order, two per word, low half first.
fn every_half_as_words() -> Vec<u32> {
    (0..=u16::MAX)
        .collect::<Vec<u16>>()
        .chunks(2)
        .map(|pair| u32::from(pair[0]) | (u32::from(pair[1]) << 16))
        .collect()
}

/// The f32 bits `form` gives each half on `ctx`, in half order.
fn convert_on_gpu(ctx: &GpuContext, form: HalfDecode) -> Vec<u32> {
    let source = format!("{}\n{HARNESS}", form.source());
    // 16,384 invocations of four halves each.
    run_harness(ctx, &source, &every_half_as_words(), 16_384, 65_536)
}

/// Runs `invocations` of `source`'s `convert` entry (64 per workgroup; binding 0 reads
/// `input`, binding 1 writes `outputs` u32 words) and reads the outputs back.
fn run_harness(
    ctx: &GpuContext,
    source: &str,
    input: &[u32],
    invocations: u32,
    outputs: u64,
) -> Vec<u32> {
    let device = &ctx.device;
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("conversion harness"),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("conversion harness"),
        layout: None,
        module: &module,
        entry_point: Some("convert"),
        compilation_options: Default::default(),
        cache: None,
    });
    let input_buffer = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("harness input"),
        contents: bytemuck::cast_slice(input),
        usage: wgpu::BufferUsages::STORAGE,
    });
    let size = outputs * 4;
    let output = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("f32 bits"),
        size,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let readback = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: input_buffer.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: output.as_entire_binding(),
            },
        ],
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(invocations.div_ceil(64), 1, 1);
    }
    encoder.copy_buffer_to_buffer(&output, 0, &readback, 0, size);
    ctx.queue.submit([encoder.finish()]);
    let slice = readback.slice(..);
    slice.map_async(wgpu::MapMode::Read, |r| r.expect("map readback"));
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .expect("poll");
    let view = slice.get_mapped_range().expect("mapped readback");
    bytemuck::cast_slice::<u8, u32>(&view).to_vec()
}

/// Each invocation decodes one word of four FP8 codes and writes their values' f32 bits
/// (`decode4` gives them in units of `CODE_UNIT`; a power of two, so the product is exact).
const FP8_HARNESS: &str = "
@group(0) @binding(0) var<storage, read> words: array<u32>;
@group(0) @binding(1) var<storage, read_write> bits: array<vec4<u32>>;

@compute @workgroup_size(64)
fn convert(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < arrayLength(&words)) {
        bits[id.x] = bitcast<vec4<u32>>(decode4(words[id.x]) * CODE_UNIT);
    }
}
";

/// Every FP8 code of both formats through `decode4` as the kernels build it with either
/// half conversion (the integer form decodes codes straight to f32, the built-in widens them
/// to f16 first), on every adapter, against the CPU decoder: bit for bit, both zeros and
/// every subnormal included; NaN codes give NaN.
#[test]
fn both_forms_decode_every_fp8_code_exactly() {
    use pagekv::cache::KvFormat;
    use pagekv::cache::quant::Fp8;
    use pagekv::kernels::codec_source;
    let words: Vec<u32> = (0..=255u32)
        .collect::<Vec<_>>()
        .chunks(4)
        .map(|c| c[0] | (c[1] << 8) | (c[2] << 16) | (c[3] << 24))
        .collect();
    for ctx in common::contexts() {
        for (format, fp8) in [
            (KvFormat::Fp8E4M3, Fp8::E4M3),
            (KvFormat::Fp8E5M2, Fp8::E5M2),
        ] {
            for form in [HalfDecode::Builtin, HalfDecode::Integer] {
                let codec = codec_source(format, form).expect("FP8 has codes");
                let source = format!("{codec}\n{FP8_HARNESS}");
                let bits = run_harness(&ctx, &source, &words, 64, 256);
                let wrong: Vec<String> = (0..=255u8)
                    .zip(&bits)
                    .filter(|&(code, &got)| {
                        let want = fp8.decode(code);
                        if want.is_nan() {
                            !f32::from_bits(got).is_nan()
                        } else {
                            got != want.to_bits()
                        }
                    })
                    .map(|(code, got)| {
                        format!("{code:#04x}: {got:#010x}, want {}", fp8.decode(code))
                    })
                    .collect();
                assert!(
                    wrong.is_empty(),
                    "{} codes of {} wrong in the {} form on {}, first: {:?}",
                    wrong.len(),
                    format.name(),
                    form.name(),
                    ctx.describe(),
                    &wrong[..wrong.len().min(8)]
                );
            }
        }
    }
}

#[test]
fn both_forms_convert_every_half_exactly() {
    for ctx in common::contexts() {
        for form in [HalfDecode::Builtin, HalfDecode::Integer] {
            let bits = convert_on_gpu(&ctx, form);
            let mut wrong = Vec::new();
            for (h, &got) in (0..=u16::MAX).zip(&bits) {
                let want = f16::from_bits(h).to_f32();
                let ok = if want.is_nan() && form == HalfDecode::Builtin {
                    f32::from_bits(got).is_nan()
                } else {
                    got == want.to_bits()
                };
                if !ok {
                    wrong.push(format!(
                        "{h:#06x}: {got:#010x}, want {:#010x}",
                        want.to_bits()
                    ));
                }
            }
            assert!(
                wrong.is_empty(),
                "{} halves wrong in the {} form on {}, first: {:?}",
                wrong.len(),
                form.name(),
                ctx.describe(),
                &wrong[..wrong.len().min(8)]
            );
        }
    }
}

/// Attention through the form the adapter does not default to (the integer form on Vulkan,
/// the built-in on llvmpipe's GL), against the f64 reference: every adapter then checks both
/// forms end to end, for f16 and for FP8 (whose codes widen to halves).
#[cfg(feature = "tool")]
#[test]
fn attention_matches_the_reference_with_either_form() {
    use pagekv::cache::{KvFormat, ModelGeometry};
    use pagekv::verify::{VerifyCase, run_case};
    for ctx in common::contexts() {
        let other = match HalfDecode::for_device(&ctx) {
            HalfDecode::Builtin => HalfDecode::Integer,
            HalfDecode::Integer => HalfDecode::Builtin,
        };
        for format in [KvFormat::F16, KvFormat::Fp8E4M3] {
            let geometry = ModelGeometry::new("q4kv2d64", 2, 4, 2, 64);
            let mut case = VerifyCase::new(geometry, format, 16, vec![1, 33, 130]);
            case.half_decode = Some(other);
            let out = run_case(&ctx, &case, false)
                .unwrap_or_else(|e| panic!("{} on {}: {e}", format.name(), ctx.describe()));
            assert!(
                out.passed,
                "{} {} form on {}: prefill {:?} decode {:?}",
                format.name(),
                other.name(),
                ctx.describe(),
                out.prefill,
                out.decode
            );
            let integer = out.variants.iter().any(|v| v.ends_with("_ih"));
            assert_eq!(integer, other == HalfDecode::Integer, "{:?}", out.variants);
        }
    }
}
