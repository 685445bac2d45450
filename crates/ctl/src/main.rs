//! dynamodctl.

fn main() {}
