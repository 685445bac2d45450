//! Things logind waits for: a pipe's other end closing (session fifos, inhibitor fds), bus
//! clients leaving (session controllers), closing sessions emptying, and VT switches.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use dynamod_dbus::zbus::message::Type as MessageType;
use dynamod_dbus::zbus::{Connection, MatchRule, MessageStream};

use crate::cgroup::Cgroups;
use crate::daemon::Context;
use crate::lifecycle;
use crate::vt::Vt;

/// Resolves once every copy of the other end of the pipe whose read end is `fd` is closed.
/// Data written into the pipe is read and ignored.
pub async fn hangup(fd: OwnedFd) {
    let pipe = match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("cannot watch a pipe, treating it as closed: {e}");
            return;
        }
    };
    let mut buf = [0u8; 256];
    loop {
        if pipe.readable().await.is_err() {
            return;
        }
        match pipe.try_read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return,
        }
    }
}

/// A stream of the bus's `NameOwnerChanged` signals.
pub async fn name_watcher(conn: &Connection) -> Result<MessageStream, dynamod_dbus::zbus::Error> {
    let rule = MatchRule::builder()
        .msg_type(MessageType::Signal)
        .sender("org.freedesktop.DBus")
        .interface("org.freedesktop.DBus")
        .member("NameOwnerChanged")
        .build()?;
    MessageStream::for_match_rule(rule, conn, None).await
}

async fn next(
    stream: &mut MessageStream,
) -> Option<dynamod_dbus::zbus::Result<dynamod_dbus::zbus::Message>> {
    use futures_core::Stream;
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *stream).poll_next(cx)).await
}

/// Releases the sessions of controllers that leave the bus (systemd: "closing the D-Bus
/// connection implicitly releases control").
pub async fn controllers(ctx: Arc<Context>, mut stream: MessageStream) {
    while let Some(msg) = next(&mut stream).await {
        let Ok(msg) = msg else { continue };
        let Ok((name, _old, new)) = msg.body().deserialize::<(String, String, String)>() else {
            continue;
        };
        if name.starts_with(':') && new.is_empty() {
            lifecycle::controller_gone(&ctx, &name).await;
        }
    }
}

/// Removes closing sessions whose cgroups have emptied (checked every half second while any
/// session is closing).
pub async fn closing_sessions(ctx: Arc<Context>) {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let done: Vec<String> = ctx
            .state()
            .sessions
            .values()
            .filter(|s| s.closing)
            .filter(|s| s.cgroup.as_deref().is_none_or(|d| !Cgroups::populated(d)))
            .map(|s| s.id.clone())
            .collect();
        for id in done {
            lifecycle::finalize(&ctx, &id).await;
        }
    }
}

/// Follows the foreground VT (`/sys/class/tty/tty0/active` signals changes with `POLLPRI`)
/// and makes the session on it active.
pub async fn active_vt(ctx: Arc<Context>, vt: Vt) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(8);
    let file_path = vt.active_file().to_owned();
    std::thread::spawn(move || {
        let Ok(mut file) = std::fs::File::open(&file_path) else {
            tracing::warn!("cannot watch {}", file_path.display());
            return;
        };
        let mut last = None;
        loop {
            use std::io::Seek;
            let mut text = String::new();
            if file.rewind().is_err() || file.read_to_string(&mut text).is_err() {
                return;
            }
            let now = crate::vt::parse_active(&text);
            if now != last {
                last = now;
                if let Some(n) = now
                    && tx.blocking_send(n).is_err()
                {
                    return;
                }
            }
            let mut fds = [nix::poll::PollFd::new(
                file.as_fd(),
                nix::poll::PollFlags::POLLPRI | nix::poll::PollFlags::POLLERR,
            )];
            if let Err(e) = nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE)
                && e != nix::errno::Errno::EINTR
            {
                return;
            }
        }
    });
    while let Some(n) = rx.recv().await {
        lifecycle::vt_changed(&ctx, n).await;
    }
}
