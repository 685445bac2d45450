//! One notify-socket datagram through `dynamod_svmgr::notify::parse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dynamod_fuzz::notify_datagram(data));
