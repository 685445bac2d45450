//! dynamod-svmgr.

fn main() {}
