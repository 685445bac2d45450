//! The pure supervision core (no I/O; the clock is passed in).
