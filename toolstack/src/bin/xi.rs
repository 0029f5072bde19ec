//! `xi`: the command line, modelled on `xl` (see [`toolstack::cli`]).
//!
//! Exit status: 0 success, 1 the operation failed, 2 bad usage.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    toolstack::cli::main()
}
