//! Shared D-Bus plumbing for dynamod's systemd-compatible daemons.
