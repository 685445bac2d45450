//! Running the helper programs that touch devices: `hwclock` for the RTC, `loadkeys` for the
//! console keymap. They go through `dynamod_sys::spawn` like every process dynamod starts.

use dynamod_sys::spawn::{Command, Stdio};

/// The `PATH` the helpers are looked up in.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Runs `program args…` to completion; `Err` says what went wrong, for a D-Bus error message.
pub async fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let program = program.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let shown = format!("{program} {}", args.join(" "));
    let outcome = tokio::task::spawn_blocking(move || {
        let child = Command::new(&program)
            .args(&args)
            .env("PATH", PATH)
            .stdin(Stdio::Null)
            .stdout(Stdio::Null)
            .spawn()
            .map_err(|e| e.to_string())?;
        dynamod_sys::process::wait_pid(child.pid).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| format!("{shown}: {e}"))?;
    match outcome {
        Ok(dynamod_sys::process::ExitStatus::Exited(0)) => Ok(()),
        Ok(status) => Err(format!("{shown} failed ({status:?})")),
        Err(e) => Err(format!("{shown}: {e}")),
    }
}
