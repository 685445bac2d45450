//! One supervisor file through `dynamod_config::parse_supervisor`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dynamod_fuzz::supervisor_file(data));
