//! `pagekv devices --probe-memory`: how much memory each adapter really lets pagekv allocate,
//! and the probe `run --budget device` sizes its budget from.

use clap::Args;
use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use pagekv::gpu::{
    AdapterReport, GIB, GpuContext, GpuError, MIB, MemoryKind, MemoryProbe, ProbePlan, ProbeStop,
    adapter_label, backend_name, device_type_name, host_total_bytes, human_bytes,
    matching_adapters, probe_memory,
};
use serde::Serialize;

use super::{CliError, GlobalArgs};

/// The probe's flags, part of `pagekv devices`.
#[derive(Debug, Clone, Default, Args)]
pub struct ProbeArgs {
    /// Measure how much memory each selected adapter can really allocate, by allocating
    /// storage buffers until one fails or the cap is reached (then freeing them).
    #[arg(long)]
    pub probe_memory: bool,
    /// The probe's cap in GiB (default: 90% of host memory on CPU adapters and integrated
    /// GPUs, whose memory is the host's; on other GPUs the first failed allocation).
    #[arg(
        long,
        value_name = "GIB",
        requires = "probe_memory",
        allow_negative_numbers = true
    )]
    pub max: Option<f64>,
    /// The probe's allocation size in MiB (default 256; never above the device's buffer and
    /// storage-binding limits).
    #[arg(
        long,
        value_name = "MIB",
        requires = "probe_memory",
        allow_negative_numbers = true
    )]
    pub step: Option<f64>,
}

impl ProbeArgs {
    /// `--max` and `--step` in bytes, refused in one sentence when they are not sizes.
    pub fn sizes(&self) -> Result<(Option<u64>, Option<u64>), CliError> {
        let bytes = |flag: &str, value: Option<f64>, unit: u64, example: &str| {
            value
                .map(|v| {
                    let bytes = v * unit as f64;
                    if v.is_finite() && (4.0..1e18).contains(&bytes) {
                        Ok(bytes as u64)
                    } else {
                        Err(CliError::input(format!(
                            "{flag} {v} is not a size; give a positive number like {example}"
                        )))
                    }
                })
                .transpose()
        };
        Ok((
            bytes("--max", self.max, GIB, "2 (GiB)")?,
            bytes("--step", self.step, MIB, "256 (MiB)")?,
        ))
    }
}

/// Plans a probe for `ctx` from the device's own limits; `max` and `step` in bytes.
pub fn plan(ctx: &GpuContext, max: Option<u64>, step: Option<u64>) -> Result<ProbePlan, CliError> {
    let caps = &ctx.capabilities;
    ProbePlan::new(
        step,
        max,
        caps.max_buffer,
        caps.max_storage_binding,
        MemoryKind::of(ctx.info.device_type),
        host_total_bytes(),
    )
    .map_err(|e| CliError::input(format!("{}: {e} (--max GIB)", ctx.info.name)))
}

/// Probes `ctx`, turning a lost device or an error other than out-of-memory into one
/// sentence with exit status 2.
pub fn probe(ctx: &GpuContext, plan: &ProbePlan) -> Result<MemoryProbe, CliError> {
    let found = probe_memory(ctx, plan).map_err(|e| probe_error(ctx, &e.to_string()))?;
    if let ProbeStop::DeviceLost(reason) = &found.stop {
        return Err(lost(ctx, &found, reason));
    }
    Ok(found)
}

fn probe_error(ctx: &GpuContext, e: &str) -> CliError {
    CliError::input(format!(
        "the memory probe on {} stopped with an error: {e}",
        adapter_label(&ctx.info.name, ctx.info.backend)
    ))
}

fn lost(ctx: &GpuContext, found: &MemoryProbe, reason: &str) -> CliError {
    CliError::input(format!(
        "{} was lost during the memory probe after {} in {} buffers ({reason}); \
         rerun with a smaller --max",
        adapter_label(&ctx.info.name, ctx.info.backend),
        human_bytes(found.usable_bytes),
        found.buffers
    ))
}

/// One line for headers: the usable figure and what it is.
pub fn summary(found: &MemoryProbe) -> String {
    format!(
        "{} usable ({}{}, {} buffers of up to {})",
        human_bytes(found.usable_bytes),
        match found.stop {
            ProbeStop::Cap => "stopped at the cap",
            ProbeStop::AllocationFailed(_) => "stopped by a failed allocation",
            ProbeStop::DeviceLost(_) => "device lost",
        },
        if found.host_memory {
            "; host memory: this adapter's memory is the host's"
        } else {
            ""
        },
        found.buffers,
        human_bytes(found.plan.step_bytes),
    )
}

/// One adapter's probe as `--json` writes it.
#[derive(Debug, Serialize)]
struct ProbeEntry {
    adapter: AdapterReport,
    probe: Option<MemoryProbe>,
    error: Option<String>,
}

/// Probes every adapter the global filters select and prints a table (or JSON). An adapter
/// that cannot be opened, errs or is lost gets its line; the command then exits 2.
pub fn run(global: &GlobalArgs, args: &ProbeArgs, json: bool) -> Result<(), CliError> {
    let (max, step) = args.sizes()?;
    let adapters = matching_adapters(&global.filter()?);
    if adapters.is_empty() {
        // Names the flags and the adapters present.
        return global.open().map(|_| ());
    }
    let mut entries = Vec::new();
    let mut first_error: Option<CliError> = None;
    for adapter in &adapters {
        let outcome = GpuContext::from_adapter(adapter)
            .map_err(|e: GpuError| CliError::from(e))
            .and_then(|ctx| {
                let plan = plan(&ctx, max, step)?;
                let found =
                    probe_memory(&ctx, &plan).map_err(|e| probe_error(&ctx, &e.to_string()))?;
                let error = match &found.stop {
                    ProbeStop::DeviceLost(reason) => Some(lost(&ctx, &found, reason)),
                    _ => None,
                };
                Ok((ctx.report(), found, error))
            });
        let entry = match outcome {
            Ok((adapter, found, error)) => {
                let text = error.as_ref().map(|e| e.message().to_string());
                if let Some(e) = error {
                    first_error.get_or_insert(e);
                }
                ProbeEntry {
                    adapter,
                    probe: Some(found),
                    error: text,
                }
            }
            Err(e) => {
                let info = adapter.get_info();
                let text = e.message().to_string();
                first_error.get_or_insert(e);
                ProbeEntry {
                    adapter: AdapterReport {
                        name: info.name,
                        backend: info.backend,
                        device_type: info.device_type,
                        ..AdapterReport::default()
                    },
                    probe: None,
                    error: Some(text),
                }
            }
        };
        entries.push(entry);
    }
    if json {
        let text = serde_json::to_string_pretty(&entries)
            .map_err(|e| CliError::failed(format!("could not encode the probe as JSON: {e}")))?;
        println!("{text}");
    } else {
        print_table(&entries);
    }
    first_error.map_or(Ok(()), Err)
}

fn print_table(entries: &[ProbeEntry]) {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "adapter",
        "backend",
        "type",
        "step",
        "cap",
        "buffers",
        "usable GiB",
        "stopped because",
    ]);
    for e in entries {
        let mut row = vec![
            Cell::new(&e.adapter.name),
            Cell::new(backend_name(e.adapter.backend)),
            Cell::new(device_type_name(e.adapter.device_type)),
        ];
        match &e.probe {
            Some(p) => row.extend([
                Cell::new(human_bytes(p.plan.step_bytes)),
                Cell::new(format!(
                    "{} ({})",
                    human_bytes(p.plan.cap_bytes),
                    p.plan.cap_source.describe()
                )),
                Cell::new(p.buffers),
                Cell::new(format!("{:.2}", p.usable_bytes as f64 / GIB as f64)),
                Cell::new(p.stop.describe()),
            ]),
            None => row.extend([
                Cell::new("-"),
                Cell::new("-"),
                Cell::new("-"),
                Cell::new("-"),
                Cell::new("could not open"),
            ]),
        }
        table.add_row(row);
    }
    for i in [5, 6] {
        if let Some(col) = table.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    println!("{table}");
    for e in entries {
        let who = e.adapter.label();
        if let Some(error) = &e.error {
            println!("{who}: {error}");
        }
        let Some(p) = &e.probe else { continue };
        if p.host_memory {
            println!(
                "{who}: a {} adapter, so the figure is host memory, shared with every other \
                 process on this machine",
                device_type_name(e.adapter.device_type)
            );
        }
        match &p.stop {
            ProbeStop::Cap => println!(
                "{who}: every step succeeded up to the cap; the device may hold more \
                 (raise --max)"
            ),
            ProbeStop::AllocationFailed(why) => {
                println!("{who}: the next allocation failed: {why}")
            }
            ProbeStop::DeviceLost(_) => {}
        }
    }
    println!(
        "Usable bytes are storage buffers allocated and cleared one step at a time, then freed; \
         see docs/memory-probe.md."
    );
}
