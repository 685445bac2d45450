//! dynamod-hostnamed.

fn main() {}
