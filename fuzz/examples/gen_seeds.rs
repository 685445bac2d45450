//! Writes the seed corpora: `cargo run --example gen_seeds` (in `fuzz/`).
//!
//! The seeds come from the repository's configuration files and from messages encoded with the
//! protocol crate (see `dynamod_fuzz::seeds`); the result goes to `fuzz/seeds/TARGET/`.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR"));
    let repo = fuzz.parent().unwrap_or(fuzz);
    let result = dynamod_fuzz::seeds::all(repo)
        .and_then(|seeds| dynamod_fuzz::seeds::write(&fuzz.join("seeds"), &seeds).map(|()| seeds));
    match result {
        Ok(seeds) => {
            println!(
                "wrote {} seeds to {}",
                seeds.len(),
                fuzz.join("seeds").display()
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("gen_seeds: {err}");
            ExitCode::FAILURE
        }
    }
}
