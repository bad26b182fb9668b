//! `pagekv devices`: every adapter wgpu can see, with the limits and features pagekv sizes its
//! pools and picks shader variants from. It is the first thing to run on a new machine and the
//! identity that result files carry.

use super::{CliError, GlobalArgs};
use clap::Args;
use comfy_table::{Cell, Table, presets::UTF8_FULL_CONDENSED};
use pagekv::gpu::{
    AdapterFilter, AdapterReport, GpuError, backend_name, device_type_name, list_adapters,
};
use serde::Serialize;

/// Flags of `pagekv devices`.
#[derive(Debug, Clone, Default, Args)]
pub struct DevicesArgs {
    /// Print the adapters (or the probe) as a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Memory probing.
    #[command(flatten)]
    pub probe: super::probe::ProbeArgs,
}

/// One adapter as `--json` writes it: the library's report plus the readable vendor and
/// whether pagekv would pick it by default.
#[derive(Debug, Serialize)]
struct DeviceEntry {
    #[serde(flatten)]
    report: AdapterReport,
    vendor_hex: String,
    vendor_name: String,
    default: bool,
}

/// A readable vendor name for the PCI (or Khronos) vendor ids pagekv users meet.
pub fn vendor_name(id: u32) -> &'static str {
    match id {
        0x10de => "NVIDIA",
        0x1002 | 0x1022 => "AMD",
        0x8086 => "Intel",
        0x106b => "Apple",
        0x10005 => "Mesa/software",
        0x13b5 => "Arm",
        0x5143 => "Qualcomm",
        0x1010 => "Imagination",
        0x14e4 => "Broadcom",
        0x1414 => "Microsoft",
        _ => "unknown",
    }
}

fn matches(filter: &AdapterFilter, report: &AdapterReport) -> bool {
    let backend_ok = filter.backend.is_none_or(|b| b == report.backend);
    let name_ok = filter
        .name
        .as_ref()
        .is_none_or(|n| report.name.to_lowercase().contains(&n.to_lowercase()));
    backend_ok && name_ok
}

fn bytes(n: u64) -> String {
    const MIB: u64 = 1 << 20;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else if n >= MIB {
        format!("{:.1} GiB ({n} B)", n as f64 / (1u64 << 30) as f64)
    } else {
        format!("{n} B")
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Lists the adapters matching `--backend`/`--adapter`. The first one listed is the one every
/// other subcommand picks with the same flags (adapters come sorted best first).
pub fn run(global: &GlobalArgs, args: &DevicesArgs) -> Result<(), CliError> {
    if args.probe.probe_memory {
        return super::probe::run(global, &args.probe, args.json);
    }
    let filter = global.filter()?;
    let all = list_adapters();
    if all.is_empty() {
        return Err(GpuError::NoAdapter.into());
    }
    let seen: Vec<String> = all.iter().map(AdapterReport::label).collect();
    let entries: Vec<DeviceEntry> = all
        .into_iter()
        .filter(|r| matches(&filter, r))
        .enumerate()
        .map(|(i, report)| DeviceEntry {
            vendor_hex: format!("{:#x}", report.vendor),
            vendor_name: vendor_name(report.vendor).to_string(),
            default: i == 0,
            report,
        })
        .collect();
    if entries.is_empty() {
        return Err(global.gpu_error(GpuError::NoMatchingAdapter {
            wanted: global.describe(),
            seen: seen.join(", "),
        }));
    }
    if args.json {
        let text = serde_json::to_string_pretty(&entries)
            .map_err(|e| CliError::failed(format!("could not encode adapters as JSON: {e}")))?;
        println!("{text}");
        return Ok(());
    }

    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    let mut header = vec![Cell::new("")];
    header.extend(entries.iter().enumerate().map(|(i, e)| {
        Cell::new(if e.default {
            format!("#{i} (default)")
        } else {
            format!("#{i}")
        })
    }));
    table.set_header(header);
    type Field = fn(&DeviceEntry) -> String;
    let rows: [(&str, Field); 16] = [
        ("name", |e| e.report.name.clone()),
        ("vendor", |e| {
            format!("{} ({})", e.vendor_hex, e.vendor_name)
        }),
        ("backend", |e| backend_name(e.report.backend).into()),
        ("device type", |e| {
            device_type_name(e.report.device_type).into()
        }),
        ("driver", |e| {
            if e.report.driver.is_empty() {
                "(not reported)".into()
            } else {
                e.report.driver.clone()
            }
        }),
        ("driver info", |e| e.report.driver_info.clone()),
        ("max storage binding", |e| {
            bytes(e.report.capabilities.max_storage_binding)
        }),
        ("max buffer", |e| bytes(e.report.capabilities.max_buffer)),
        ("workgroup storage", |e| {
            bytes(e.report.capabilities.max_workgroup_storage.into())
        }),
        ("invocations / workgroup", |e| {
            e.report
                .capabilities
                .max_invocations_per_workgroup
                .to_string()
        }),
        ("storage buffers / stage", |e| {
            e.report
                .capabilities
                .max_storage_buffers_per_stage
                .to_string()
        }),
        ("workgroups / dimension", |e| {
            e.report
                .capabilities
                .max_workgroups_per_dimension
                .to_string()
        }),
        ("SHADER_F16", |e| {
            yes_no(e.report.capabilities.shader_f16).into()
        }),
        ("SUBGROUP", |e| {
            yes_no(e.report.capabilities.subgroup).into()
        }),
        ("TIMESTAMP_QUERY", |e| {
            yes_no(e.report.capabilities.timestamps).into()
        }),
        ("f16 KV storage", |e| {
            if e.report.capabilities.shader_f16 {
                "native f16".into()
            } else {
                "packed in u32".into()
            }
        }),
    ];
    for (label, field) in rows {
        let mut row = vec![Cell::new(label)];
        row.extend(entries.iter().map(|e| Cell::new(field(e))));
        table.add_row(row);
    }
    println!("{table}");
    println!(
        "{} adapter(s); #0 is the default pick (discrete, then integrated, virtual, cpu; native APIs before GL). Narrow with --backend and --adapter.",
        entries.len()
    );
    Ok(())
}
