//! The `pagekv` binary: a thin shell over the library. Parsing, dispatch and printing live in
//! [`cli`]; everything it measures or checks lives in the `pagekv` library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
