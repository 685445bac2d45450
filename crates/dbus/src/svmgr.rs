//! Talking to dynamod-svmgr from async code: one request per connection over the control
//! socket (`dynamodctl`'s synchronous client on a blocking thread).

use std::path::{Path, PathBuf};
use std::time::Duration;

use dynamod_proto::{ErrorKind, Request, Response, ServiceDetail, ServiceSummary, SystemState};
use dynamodctl::client::{Client, ClientError};

/// Connecting and the hello exchange must finish within this.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Wait for answers that svmgr gives at once (reads, `no_block` requests).
pub const QUICK_TIMEOUT: Duration = Duration::from_secs(30);

/// The default control socket.
pub const DEFAULT_SOCKET: &str = "/run/dynamod/control.sock";

/// A request to svmgr failed.
#[derive(Debug, thiserror::Error)]
pub enum SvmgrError {
    /// Connecting, sending or receiving failed.
    #[error("svmgr at {}", socket.display())]
    Client {
        /// The control socket.
        socket: PathBuf,
        /// The cause.
        #[source]
        source: ClientError,
    },
    /// svmgr answered with an error.
    #[error("{message}")]
    Refused {
        /// Its class.
        kind: ErrorKind,
        /// Its explanation.
        message: String,
    },
    /// svmgr answered something that does not fit the request.
    #[error("unexpected answer from svmgr: {0}")]
    Unexpected(&'static str),
    /// The blocking task died.
    #[error("the svmgr request task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// One request on a fresh connection; `timeout` bounds the wait for the answer (`None` waits as
/// long as svmgr takes, e.g. for a start that waits for readiness).
pub async fn request(
    socket: &Path,
    req: Request,
    timeout: Option<Duration>,
) -> Result<Response, SvmgrError> {
    let socket = socket.to_owned();
    tokio::task::spawn_blocking(move || {
        let client_err = |source| SvmgrError::Client {
            socket: socket.clone(),
            source,
        };
        let mut client = Client::connect(&socket, CONNECT_TIMEOUT).map_err(client_err)?;
        match client.request(&req, timeout) {
            Ok(r) => Ok(r),
            Err(ClientError::Server { kind, message }) => {
                Err(SvmgrError::Refused { kind, message })
            }
            Err(e) => Err(client_err(e)),
        }
    })
    .await
    .map_err(SvmgrError::Task)?
}

/// Every service.
pub async fn list(socket: &Path) -> Result<Vec<ServiceSummary>, SvmgrError> {
    match request(socket, Request::List, Some(QUICK_TIMEOUT)).await? {
        Response::List(v) => Ok(v),
        _ => Err(SvmgrError::Unexpected("list")),
    }
}

/// Details of one service; `Ok(None)` when svmgr does not know it.
pub async fn status(socket: &Path, name: &str) -> Result<Option<ServiceDetail>, SvmgrError> {
    let req = Request::Status {
        names: vec![name.to_owned()],
    };
    match request(socket, req, Some(QUICK_TIMEOUT)).await {
        Ok(Response::Status(mut v)) if !v.is_empty() => Ok(Some(v.swap_remove(0))),
        Ok(Response::Status(_)) => Ok(None),
        Ok(_) => Err(SvmgrError::Unexpected("status")),
        Err(SvmgrError::Refused {
            kind: ErrorKind::UnknownService,
            ..
        }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The overall state.
pub async fn system_state(socket: &Path) -> Result<SystemState, SvmgrError> {
    match request(socket, Request::SystemState, Some(QUICK_TIMEOUT)).await? {
        Response::SystemState(s) => Ok(s),
        _ => Err(SvmgrError::Unexpected("system state")),
    }
}
