//! libsystemd shim.
