//! The wire protocol every dynamod component speaks.
//!
//! # Framing
//!
//! A frame is a 6-byte header followed by a payload:
//!
//! ```text
//! +------+------+------------------------+----------------------------+
//! | 'D'  | 'M'  | payload length (u32 BE) | MessagePack payload        |
//! +------+------+------------------------+----------------------------+
//! ```
//!
//! The payload is one value encoded with `rmp-serde`, structs as maps with field names (so fields
//! can be added without breaking older peers that ignore them). A declared length above
//! [`MAX_FRAME`] is refused before anything is buffered, so a hostile peer cannot make a reader
//! allocate more than that.
//!
//! # Handshake
//!
//! The first frame in each direction is a [`Hello`] carrying [`PROTOCOL_VERSION`]. A server that
//! gets a different version answers with an error and closes; nothing else is exchanged before
//! the handshake.
//!
//! # Channels
//!
//! * init ↔ svmgr: a socketpair created by `dynamod-init`, the svmgr end passed as
//!   `DYNAMOD_INIT_FD`. Messages: [`InitMsg`] (init → svmgr) and [`SvmgrMsg`] (svmgr → init).
//! * control: `/run/dynamod/control.sock`, one [`Request`] and one [`Response`] per exchange,
//!   several exchanges per connection allowed.
//! * logging: `/run/dynamod/log.sock` between svmgr and logd, [`LogMsg`].
//! * log queries: `/run/dynamod/logd.sock`, served by logd to `dynamodctl logs`
//!   ([`LogRequest`] / [`LogReply`]).

mod frame;
pub mod init_wire;
mod types;

pub use frame::{FrameDecoder, ProtoError, decode_payload, encode, encode_into};
pub use types::*;

/// The two magic bytes that open every frame.
pub const MAGIC: [u8; 2] = *b"DM";
/// Bumped on every incompatible change of the message types.
pub const PROTOCOL_VERSION: u16 = 1;
/// Length of the frame header: magic plus a big-endian `u32` payload length.
pub const HEADER_LEN: usize = 6;
/// Largest payload accepted or produced (4 MiB: a `status --json` of thousands of services fits).
pub const MAX_FRAME: usize = 4 * 1024 * 1024;
