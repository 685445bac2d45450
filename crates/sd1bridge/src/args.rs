//! The command line.

use std::path::PathBuf;

/// How dynamod-sd1bridge runs.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "dynamod-sd1bridge",
    version,
    about = "Serves org.freedesktop.systemd1 for dynamod-svmgr's services"
)]
pub struct Options {
    /// dynamod-svmgr's control socket.
    #[arg(
        long,
        value_name = "PATH",
        env = "DYNAMOD_SOCKET",
        default_value = "/run/dynamod/control.sock"
    )]
    pub control_socket: PathBuf,

    /// D-Bus address of the system bus [default: $DBUS_SYSTEM_BUS_ADDRESS, else
    /// unix:path=/run/dbus/system_bus_socket].
    #[arg(long, value_name = "ADDRESS")]
    pub bus: Option<String>,

    /// The runtime directory: the bridge serves `systemd/private` (root's systemctl tries it
    /// before the bus) and creates `systemd/system/` (sd_booted(3): systemd's clients refuse to
    /// run without it) under it.
    #[arg(long, value_name = "DIR", default_value = "/run")]
    pub run_dir: PathBuf,

    /// Do not serve the peer-to-peer socket.
    #[arg(long)]
    pub no_private_socket: bool,
}
