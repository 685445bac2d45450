//! Several configuration files (`--- PATH` lines between them) through `dynamod_config::load_sources`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dynamod_fuzz::config_dirs(data));
