//! dynamod-sd1bridge.

fn main() {}
