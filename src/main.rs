//! The `pagekv` binary: a thin shell over the library. Parsing, dispatch and printing live in
//! [`cli`]; everything it measures or checks lives in the `pagekv` library.

mod cli;

fn main() -> std::process::ExitCode {
    // SAFETY: first thing in `main`, before any thread exists.
    unsafe { pagekv::gpu::quiet_headless_vulkan() };
    cli::main()
}
