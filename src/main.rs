//! The `pagekv` binary: a thin shell over the library. Parsing, dispatch and printing live in
//! [`cli`]; everything it measures or checks lives in the `pagekv` library.

mod cli;

fn main() -> std::process::ExitCode {
    // Rust ignores SIGPIPE, so a print to a pipe whose reader has gone (`pagekv compare a b |
    // head`) would panic. Like any Unix tool, pagekv then ends quietly instead. Sockets are
    // unaffected: std sends with MSG_NOSIGNAL (SO_NOSIGPIPE on Apple platforms), so the
    // metrics server still sees a closed connection as an error.
    // SAFETY: first thing in `main`, before any thread exists; SIG_DFL is a valid action.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // SAFETY: first thing in `main`, before any thread exists.
    unsafe { pagekv::gpu::quiet_headless_vulkan() };
    cli::main()
}
