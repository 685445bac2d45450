//! One service file through `dynamod_config::parse_service`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dynamod_fuzz::service_file(data));
