//! `dynamodctl`: see the library documentation.

fn main() -> std::process::ExitCode {
    dynamodctl::main()
}
