//! The `pagekv` binary: a thin shell over the library. Parsing, dispatch and printing live in
//! [`cli`]; everything it measures or checks lives in the `pagekv` library.

mod cli;

fn main() -> std::process::ExitCode {
    quiet_headless_vulkan_probe();
    cli::main()
}

/// Mesa's implicit Vulkan layer `VK_LAYER_MESA_device_select` connects to a Wayland display
/// to order devices whenever an instance enables `VK_KHR_wayland_surface` (wgpu always does),
/// and libwayland prints "error: XDG_RUNTIME_DIR is invalid or not set" on a machine without
/// a desktop session. pagekv orders and filters adapters itself, so with no Wayland session
/// in sight the layer has nothing to contribute: disable it through its documented
/// environment switch, unless the user has set that switch either way.
fn quiet_headless_vulkan_probe() {
    let wayland_session = std::env::var_os("WAYLAND_DISPLAY").is_some()
        || std::env::var_os("XDG_RUNTIME_DIR").is_some();
    if !wayland_session && std::env::var_os("NODEVICE_SELECT").is_none() {
        // SAFETY: called first thing in `main`, before any thread exists, so no other code can
        // read or write the environment concurrently.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}
