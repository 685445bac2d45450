//! A byte stream through `dynamod_proto::FrameDecoder`, payloads decoded as every message type.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dynamod_fuzz::proto_stream(data));
