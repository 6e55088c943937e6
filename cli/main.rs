//! The `aigate` command: the offline half of the release gate (see `src/cli`).
fn main() -> std::process::ExitCode {
    aigate::cli::main()
}
