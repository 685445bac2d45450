//! dynamod-init: PID 1.

fn main() {}
