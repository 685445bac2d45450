//! The command line.

use std::path::PathBuf;

/// How dynamod-hostnamed runs.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "dynamod-hostnamed",
    version,
    about = "Serves org.freedesktop.hostname1, timedate1 and locale1 on the system bus"
)]
pub struct Options {
    /// Root of the configuration files read and written (`etc/hostname`, `etc/machine-info`,
    /// `etc/localtime`, `etc/adjtime`, `etc/locale.conf`, `etc/vconsole.conf`,
    /// `etc/X11/xorg.conf.d/00-keyboard.conf`); tests point it at a temporary directory.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,

    /// The time zone database.
    #[arg(long, value_name = "DIR", default_value = "/usr/share/zoneinfo")]
    pub zoneinfo: PathBuf,

    /// The console-to-X11 keyboard map used when a keyboard change asks for conversion.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/usr/share/systemd/kbd-model-map"
    )]
    pub kbd_model_map: PathBuf,

    /// D-Bus address of the system bus [default: $DBUS_SYSTEM_BUS_ADDRESS, else
    /// unix:path=/run/dbus/system_bus_socket].
    #[arg(long, value_name = "ADDRESS")]
    pub bus: Option<String>,

    /// dynamod-svmgr's control socket, used to start and stop the time synchronization service.
    #[arg(
        long,
        value_name = "PATH",
        env = "DYNAMOD_SOCKET",
        default_value = "/run/dynamod/control.sock"
    )]
    pub control_socket: PathBuf,

    /// A service that synchronizes the clock over the network; repeat in order of preference.
    #[arg(
        long = "ntp-service",
        value_name = "NAME",
        default_values = ["chronyd", "ntpd", "openntpd", "timesyncd"]
    )]
    pub ntp_services: Vec<String>,

    /// Never touch the hardware clock or the console keymap (files and the kernel hostname are
    /// still changed); for tests and containers.
    #[arg(long)]
    pub no_devices: bool,
}
