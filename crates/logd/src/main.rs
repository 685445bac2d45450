//! dynamod-logd.

fn main() {}
