//! One environment file through `dynamod_config::envfile::parse_bytes`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dynamod_fuzz::env_file(data));
