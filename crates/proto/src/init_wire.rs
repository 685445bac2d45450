//! The init ↔ svmgr channel without serde: a hand-written MessagePack writer for [`InitMsg`]
//! and reader for [`SvmgrMsg`].
//!
//! `dynamod-init` must stay small (it is compared with tini-static, binary size and idle RSS),
//! and the derived serde visitors plus rmp-serde and the float formatting their error messages
//! pull in were a tenth of its binary. init only ever writes `InitMsg` and reads `SvmgrMsg`, so
//! it uses the two functions here; every other component keeps using [`encode`](crate::encode)
//! and [`decode_payload`](crate::decode_payload).
//!
//! Compatibility with the serde encoding is what the tests check:
//! - [`encode_init_msg`] writes exactly the bytes `rmp_serde::encode::write_named` writes
//!   (unit variants as their name, other variants as a one-entry map from the name to the
//!   content, structs as maps with field names, every integer in its shortest form);
//! - [`decode_svmgr_msg`] reads everything that encoder produces for `SvmgrMsg`, and accepts a
//!   subset of what rmp-serde accepts: whenever it returns a message, rmp-serde decodes the same
//!   payload to an equal one. It is stricter on exotic but legal forms svmgr never writes
//!   (structs as arrays, variants by index, strings as `bin`), which it refuses. Like rmp-serde
//!   it ignores unknown struct fields (so fields can be added, see [`crate::types`]) and bytes
//!   after the message.
//!
//! Reading never recurses more than [`MAX_DEPTH`] levels, allocates at most the strings it
//! returns, and bounds every length by the bytes actually present.

use crate::{ExitStatus, HEADER_LEN, Hello, InitMsg, MAGIC, MAX_FRAME, ShutdownKind, SvmgrMsg};

/// Deepest nesting of arrays and maps [`decode_svmgr_msg`] walks (a message itself is three
/// levels deep; deeper values can only be unknown fields, which are skipped).
pub const MAX_DEPTH: usize = 16;

/// Why an init-channel payload could not be decoded or a frame encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The payload ended inside a value.
    #[error("message truncated")]
    Truncated,
    /// A value of the wrong type, or a form this reader does not accept.
    #[error("unexpected value in message")]
    Unexpected,
    /// A variant name no message type has.
    #[error("unknown message variant")]
    UnknownVariant,
    /// A required field is missing.
    #[error("missing field {0}")]
    MissingField(&'static str),
    /// A field appears twice.
    #[error("duplicate field {0}")]
    DuplicateField(&'static str),
    /// An integer does not fit its field.
    #[error("integer out of range")]
    OutOfRange,
    /// A string is not UTF-8.
    #[error("string is not utf-8")]
    InvalidUtf8,
    /// Values nested deeper than [`MAX_DEPTH`].
    #[error("message nested too deeply")]
    TooDeep,
    /// The encoded message would exceed [`MAX_FRAME`].
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
}

// ---- writing --------------------------------------------------------------------------------

/// Appends one complete frame (header and payload) holding `msg` to `out`, byte for byte what
/// [`encode_into`](crate::encode_into) writes for it. On error `out` is left as it was.
pub fn encode_init_msg(msg: &InitMsg, out: &mut Vec<u8>) -> Result<(), WireError> {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[0; 4]);
    match msg {
        InitMsg::Hello(h) => {
            variant_map(out, "Hello");
            map_len(out, 2);
            str(out, "version");
            uint(out, u64::from(h.version));
            str(out, "peer");
            str(out, &h.peer);
        }
        InitMsg::Heartbeat => str(out, "Heartbeat"),
        InitMsg::HeartbeatAck => str(out, "HeartbeatAck"),
        InitMsg::Shutdown { kind } => {
            variant_map(out, "Shutdown");
            map_len(out, 1);
            str(out, "kind");
            str(out, kind.as_str());
        }
        InitMsg::Reload => str(out, "Reload"),
        InitMsg::Parked { keys } => {
            variant_map(out, "Parked");
            map_len(out, 1);
            str(out, "keys");
            array_len(out, keys.len());
            for k in keys {
                str(out, k);
            }
        }
        InitMsg::OrphanExited { pid, status } => {
            variant_map(out, "OrphanExited");
            map_len(out, 2);
            str(out, "pid");
            sint(out, i64::from(*pid));
            str(out, "status");
            let (name, n) = match *status {
                ExitStatus::Exited(c) => ("exited", c),
                ExitStatus::Signaled(s) => ("signaled", s),
            };
            variant_map(out, name);
            sint(out, i64::from(n));
        }
    }
    let len = out.len() - start - HEADER_LEN;
    let Some(len32) = u32::try_from(len).ok().filter(|_| len <= MAX_FRAME) else {
        out.truncate(start);
        return Err(WireError::TooLarge(len));
    };
    if let Some(h) = out.get_mut(start + 2..start + HEADER_LEN) {
        h.copy_from_slice(&len32.to_be_bytes());
    }
    Ok(())
}

/// A one-entry map whose key is a variant name: the value follows.
fn variant_map(out: &mut Vec<u8>, name: &str) {
    map_len(out, 1);
    str(out, name);
}

fn uint(out: &mut Vec<u8>, v: u64) {
    if v < 128 {
        out.push(v as u8);
    } else if let Ok(v) = u8::try_from(v) {
        out.extend_from_slice(&[0xcc, v]);
    } else if let Ok(v) = u16::try_from(v) {
        out.push(0xcd);
        out.extend_from_slice(&v.to_be_bytes());
    } else if let Ok(v) = u32::try_from(v) {
        out.push(0xce);
        out.extend_from_slice(&v.to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// A signed integer: non-negative ones as unsigned (as rmp does), negative ones in the
/// shortest signed form.
fn sint(out: &mut Vec<u8>, v: i64) {
    if let Ok(u) = u64::try_from(v) {
        uint(out, u);
    } else if v >= -32 {
        out.push(v as u8);
    } else if let Ok(v) = i8::try_from(v) {
        out.extend_from_slice(&[0xd0, v as u8]);
    } else if let Ok(v) = i16::try_from(v) {
        out.push(0xd1);
        out.extend_from_slice(&v.to_be_bytes());
    } else if let Ok(v) = i32::try_from(v) {
        out.push(0xd2);
        out.extend_from_slice(&v.to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// A length-prefixed container or string header: the fix form below `fix_limit`, else the 8-bit
/// (only for strings), 16-bit or 32-bit form.
fn len_header(out: &mut Vec<u8>, len: usize, fix: u8, fix_limit: usize, markers: [u8; 3]) {
    if len < fix_limit {
        out.push(fix | len as u8);
    } else if let (Ok(l), true) = (u8::try_from(len), markers[0] != 0) {
        out.extend_from_slice(&[markers[0], l]);
    } else if let Ok(l) = u16::try_from(len) {
        out.push(markers[1]);
        out.extend_from_slice(&l.to_be_bytes());
    } else {
        // Larger than 4 GiB cannot fit a frame; the frame check refuses it.
        out.push(markers[2]);
        out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    }
}

fn str(out: &mut Vec<u8>, s: &str) {
    len_header(out, s.len(), 0xa0, 32, [0xd9, 0xda, 0xdb]);
    out.extend_from_slice(s.as_bytes());
}

fn map_len(out: &mut Vec<u8>, len: usize) {
    len_header(out, len, 0x80, 16, [0, 0xde, 0xdf]);
}

fn array_len(out: &mut Vec<u8>, len: usize) {
    len_header(out, len, 0x90, 16, [0, 0xdc, 0xdd]);
}

// ---- reading --------------------------------------------------------------------------------

/// Decodes a bare payload (without the frame header) sent by svmgr.
pub fn decode_svmgr_msg(payload: &[u8]) -> Result<SvmgrMsg, WireError> {
    let mut r = Reader { buf: payload };
    match r.marker()? {
        m if is_str(m) => {
            let name = r.str_body(m)?;
            match name {
                b"Heartbeat" => Ok(SvmgrMsg::Heartbeat),
                b"HeartbeatAck" => Ok(SvmgrMsg::HeartbeatAck),
                b"ShutdownComplete" => Ok(SvmgrMsg::ShutdownComplete),
                b"Reclaim" => Ok(SvmgrMsg::Reclaim),
                b"Hello" | b"RequestShutdown" | b"Park" | b"Unpark" => Err(WireError::Unexpected),
                _ => Err(WireError::UnknownVariant),
            }
        }
        m => {
            if r.map_len(m)? != 1 {
                return Err(WireError::Unexpected);
            }
            let name = r.string_bytes()?;
            match name {
                // rmp-serde writes unit variants as bare names, but reads `{name: nil}` too.
                b"Heartbeat" | b"HeartbeatAck" | b"ShutdownComplete" | b"Reclaim" => {
                    r.nil()?;
                    Ok(match name {
                        b"Heartbeat" => SvmgrMsg::Heartbeat,
                        b"HeartbeatAck" => SvmgrMsg::HeartbeatAck,
                        b"ShutdownComplete" => SvmgrMsg::ShutdownComplete,
                        _ => SvmgrMsg::Reclaim,
                    })
                }
                b"Hello" => r.hello().map(SvmgrMsg::Hello),
                b"RequestShutdown" => r.request_shutdown(),
                b"Park" => r.keys().map(|keys| SvmgrMsg::Park { keys }),
                b"Unpark" => r.keys().map(|keys| SvmgrMsg::Unpark { keys }),
                _ => Err(WireError::UnknownVariant),
            }
        }
    }
}

fn is_str(m: u8) -> bool {
    matches!(m, 0xa0..=0xbf | 0xd9..=0xdb)
}

/// A cursor over the payload; every read checks the bytes are there.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.buf.len() {
            return Err(WireError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn marker(&mut self) -> Result<u8, WireError> {
        self.take(1)?.first().copied().ok_or(WireError::Truncated)
    }

    fn be(&mut self, n: usize) -> Result<u64, WireError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// The length in a 1-, 2- or 4-byte big-endian field.
    fn len(&mut self, n: usize) -> Result<usize, WireError> {
        usize::try_from(self.be(n)?).map_err(|_| WireError::Truncated)
    }

    fn str_body(&mut self, m: u8) -> Result<&'a [u8], WireError> {
        let len = match m {
            0xa0..=0xbf => usize::from(m & 0x1f),
            0xd9 => self.len(1)?,
            0xda => self.len(2)?,
            0xdb => self.len(4)?,
            _ => return Err(WireError::Unexpected),
        };
        self.take(len)
    }

    /// A `str` value's bytes (not checked for UTF-8: used for names compared with ASCII).
    fn string_bytes(&mut self) -> Result<&'a [u8], WireError> {
        let m = self.marker()?;
        self.str_body(m)
    }

    fn string(&mut self) -> Result<String, WireError> {
        let bytes = self.string_bytes()?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| WireError::InvalidUtf8)
    }

    fn map_len(&mut self, m: u8) -> Result<usize, WireError> {
        match m {
            0x80..=0x8f => Ok(usize::from(m & 0x0f)),
            0xde => self.len(2),
            0xdf => self.len(4),
            _ => Err(WireError::Unexpected),
        }
    }

    fn array_len(&mut self, m: u8) -> Result<usize, WireError> {
        match m {
            0x90..=0x9f => Ok(usize::from(m & 0x0f)),
            0xdc => self.len(2),
            0xdd => self.len(4),
            _ => Err(WireError::Unexpected),
        }
    }

    fn nil(&mut self) -> Result<(), WireError> {
        match self.marker()? {
            0xc0 => Ok(()),
            _ => Err(WireError::Unexpected),
        }
    }

    /// Any integer, widened.
    fn int(&mut self) -> Result<i128, WireError> {
        let m = self.marker()?;
        Ok(match m {
            0x00..=0x7f => i128::from(m),
            0xe0..=0xff => i128::from(m as i8),
            0xcc => i128::from(self.be(1)?),
            0xcd => i128::from(self.be(2)?),
            0xce => i128::from(self.be(4)?),
            0xcf => i128::from(self.be(8)?),
            // Sign-extend from the field's width.
            0xd0 => i128::from(self.be(1)? as u8 as i8),
            0xd1 => i128::from(self.be(2)? as u16 as i16),
            0xd2 => i128::from(self.be(4)? as u32 as i32),
            0xd3 => i128::from(self.be(8)? as i64),
            _ => return Err(WireError::Unexpected),
        })
    }

    fn i32(&mut self) -> Result<i32, WireError> {
        i32::try_from(self.int()?).map_err(|_| WireError::OutOfRange)
    }

    /// Skips one value of any type, nested at most [`MAX_DEPTH`] levels below `depth`.
    fn skip(&mut self, depth: usize) -> Result<(), WireError> {
        let m = self.marker()?;
        let (len, items) = match m {
            0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => (0, 0),
            0x80..=0x8f => (0, 2 * usize::from(m & 0x0f)),
            0x90..=0x9f => (0, usize::from(m & 0x0f)),
            0xa0..=0xbf => (usize::from(m & 0x1f), 0),
            0xc4 | 0xd9 => (self.len(1)?, 0),
            0xc5 | 0xda => (self.len(2)?, 0),
            0xc6 | 0xdb => (self.len(4)?, 0),
            0xc7 => (self.len(1)? + 1, 0),
            0xc8 => (self.len(2)? + 1, 0),
            0xc9 => (self.len(4)? + 1, 0),
            0xca | 0xce | 0xd2 => (4, 0),
            0xcb | 0xcf | 0xd3 => (8, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => (0, self.len(2)?),
            0xdd => (0, self.len(4)?),
            0xde => (0, 2 * self.len(2)?),
            0xdf => (0, 2 * self.len(4)?),
            // 0xc1 is never used.
            _ => return Err(WireError::Unexpected),
        };
        self.take(len)?;
        if items > 0 {
            if depth >= MAX_DEPTH {
                return Err(WireError::TooDeep);
            }
            // Every value takes at least one byte: a count beyond what is left cannot be met.
            if items > self.buf.len() {
                return Err(WireError::Truncated);
            }
            for _ in 0..items {
                self.skip(depth + 1)?;
            }
        }
        Ok(())
    }

    /// A struct as a map with field names: calls `field` for each entry with the index of the
    /// name in `names`; unknown fields are skipped, a repeated one is an error.
    fn fields(
        &mut self,
        names: &[&'static str],
        mut field: impl FnMut(&mut Self, usize) -> Result<(), WireError>,
    ) -> Result<(), WireError> {
        let m = self.marker()?;
        let n = self.map_len(m)?;
        let mut seen = 0u32;
        for _ in 0..n {
            let key = self.string_bytes()?;
            match names.iter().position(|name| name.as_bytes() == key) {
                Some(i) => {
                    if seen & (1 << i) != 0 {
                        return Err(WireError::DuplicateField(
                            names.get(i).copied().unwrap_or(""),
                        ));
                    }
                    seen |= 1 << i;
                    field(self, i)?;
                }
                // Unknown fields sit at depth 2 (message map, struct map).
                None => self.skip(2)?,
            }
        }
        Ok(())
    }

    fn hello(&mut self) -> Result<Hello, WireError> {
        let (mut version, mut peer) = (None, None);
        self.fields(&["version", "peer"], |r, i| {
            if i == 0 {
                let v = r.int()?;
                version = Some(u16::try_from(v).map_err(|_| WireError::OutOfRange)?);
            } else {
                peer = Some(r.string()?);
            }
            Ok(())
        })?;
        Ok(Hello {
            version: version.ok_or(WireError::MissingField("version"))?,
            peer: peer.ok_or(WireError::MissingField("peer"))?,
        })
    }

    fn request_shutdown(&mut self) -> Result<SvmgrMsg, WireError> {
        let (mut kind, mut exit_code) = (None, None);
        self.fields(&["kind", "exit_code"], |r, i| {
            if i == 0 {
                kind = Some(match r.string_bytes()? {
                    b"poweroff" => ShutdownKind::Poweroff,
                    b"reboot" => ShutdownKind::Reboot,
                    b"halt" => ShutdownKind::Halt,
                    _ => return Err(WireError::UnknownVariant),
                });
            } else if r.buf.first() == Some(&0xc0) {
                r.take(1)?;
                exit_code = Some(None);
            } else {
                exit_code = Some(Some(r.i32()?));
            }
            Ok(())
        })?;
        Ok(SvmgrMsg::RequestShutdown {
            kind: kind.ok_or(WireError::MissingField("kind"))?,
            // An absent `Option` is `None`, as with serde.
            exit_code: exit_code.flatten(),
        })
    }

    fn keys(&mut self) -> Result<Vec<String>, WireError> {
        let mut keys = None;
        self.fields(&["keys"], |r, _| {
            let m = r.marker()?;
            let n = r.array_len(m)?;
            if n > r.buf.len() {
                return Err(WireError::Truncated);
            }
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(r.string()?);
            }
            keys = Some(v);
            Ok(())
        })?;
        keys.ok_or(WireError::MissingField("keys"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode_payload, encode};

    fn payload_of<T: serde::Serialize>(msg: &T) -> Vec<u8> {
        encode(msg).unwrap()[HEADER_LEN..].to_vec()
    }

    fn lean_frame(msg: &InitMsg) -> Vec<u8> {
        let mut out = Vec::new();
        encode_init_msg(msg, &mut out).unwrap();
        out
    }

    /// Strings around every length boundary of the MessagePack string forms.
    fn strings() -> Vec<String> {
        [0, 1, 31, 32, 255, 256, 65535, 65536]
            .iter()
            .map(|n| "k".repeat(*n))
            .chain(["a\tout\t1".to_owned(), "ü€".to_owned()])
            .collect()
    }

    /// Integers around every boundary of the MessagePack integer forms.
    fn ints() -> Vec<i32> {
        let mut v = vec![i32::MIN, i32::MAX];
        for b in [0i64, 32, 33, 127, 128, 255, 256, 32767, 32768, 65535, 65536] {
            for d in [-1, 0, 1] {
                for s in [1, -1] {
                    if let Ok(x) = i32::try_from(s * (b + d)) {
                        v.push(x);
                    }
                }
            }
        }
        v
    }

    fn init_msgs() -> Vec<InitMsg> {
        let mut all = vec![
            InitMsg::Heartbeat,
            InitMsg::HeartbeatAck,
            InitMsg::Reload,
            InitMsg::Parked { keys: vec![] },
            InitMsg::Parked {
                keys: (0..17).map(|i| format!("svc{i}\tout\t{i}")).collect(),
            },
            InitMsg::Parked {
                keys: vec!["x".to_owned(); 70_000],
            },
        ];
        for kind in [
            ShutdownKind::Poweroff,
            ShutdownKind::Reboot,
            ShutdownKind::Halt,
        ] {
            all.push(InitMsg::Shutdown { kind });
        }
        for version in [0, 1, 127, 128, 255, 256, u16::MAX] {
            all.push(InitMsg::Hello(Hello {
                version,
                peer: "dynamod-init".into(),
            }));
        }
        for peer in strings() {
            all.push(InitMsg::Hello(Hello { version: 1, peer }));
        }
        for n in ints() {
            all.push(InitMsg::OrphanExited {
                pid: n,
                status: ExitStatus::Exited(n),
            });
            all.push(InitMsg::OrphanExited {
                pid: n,
                status: ExitStatus::Signaled(n),
            });
        }
        all
    }

    fn svmgr_msgs() -> Vec<SvmgrMsg> {
        let mut all = vec![
            SvmgrMsg::Heartbeat,
            SvmgrMsg::HeartbeatAck,
            SvmgrMsg::ShutdownComplete,
            SvmgrMsg::Reclaim,
            SvmgrMsg::Park { keys: vec![] },
            SvmgrMsg::Unpark {
                keys: vec!["web\tout\t12".into(), "web\terr\t12".into()],
            },
            SvmgrMsg::Park { keys: strings() },
            SvmgrMsg::Unpark {
                keys: vec!["y".to_owned(); 70_000],
            },
        ];
        for n in ints() {
            for kind in [
                ShutdownKind::Poweroff,
                ShutdownKind::Reboot,
                ShutdownKind::Halt,
            ] {
                all.push(SvmgrMsg::RequestShutdown {
                    kind,
                    exit_code: Some(n),
                });
                all.push(SvmgrMsg::RequestShutdown {
                    kind,
                    exit_code: None,
                });
            }
        }
        for version in [0, 1, 128, u16::MAX] {
            for peer in strings() {
                all.push(SvmgrMsg::Hello(Hello { version, peer }));
            }
        }
        all
    }

    #[test]
    fn init_messages_encode_to_the_serde_bytes() {
        for msg in init_msgs() {
            assert_eq!(lean_frame(&msg), encode(&msg).unwrap(), "{msg:?}");
        }
    }

    #[test]
    fn encoding_appends_after_what_the_buffer_holds() {
        let mut out = b"xyz".to_vec();
        encode_init_msg(&InitMsg::Heartbeat, &mut out).unwrap();
        encode_init_msg(&InitMsg::Reload, &mut out).unwrap();
        let mut expected = b"xyz".to_vec();
        expected.extend(encode(&InitMsg::Heartbeat).unwrap());
        expected.extend(encode(&InitMsg::Reload).unwrap());
        assert_eq!(out, expected);
    }

    #[test]
    fn a_message_over_the_frame_limit_is_refused_and_leaves_the_buffer_alone() {
        let keys = vec!["k".repeat(1024); MAX_FRAME / 1024 + 1];
        let mut out = b"ab".to_vec();
        assert!(matches!(
            encode_init_msg(&InitMsg::Parked { keys }, &mut out),
            Err(WireError::TooLarge(_))
        ));
        assert_eq!(out, b"ab");
    }

    #[test]
    fn svmgr_messages_from_serde_decode_to_the_same_value() {
        for msg in svmgr_msgs() {
            assert_eq!(
                decode_svmgr_msg(&payload_of(&msg)),
                Ok(msg.clone()),
                "{msg:?}"
            );
        }
    }

    /// A payload built by hand: `{variant: {fields...}}`.
    fn variant_with(name: &str, fields: &[(&str, &[u8])]) -> Vec<u8> {
        let mut p = Vec::new();
        variant_map(&mut p, name);
        map_len(&mut p, fields.len());
        for (k, v) in fields {
            str(&mut p, k);
            p.extend_from_slice(v);
        }
        p
    }

    /// The property the fuzz target checks: what the lean decoder accepts, serde accepts
    /// identically.
    fn agrees_with_serde(payload: &[u8]) -> Result<SvmgrMsg, WireError> {
        let lean = decode_svmgr_msg(payload);
        if let Ok(msg) = &lean {
            assert_eq!(
                decode_payload::<SvmgrMsg>(payload).ok().as_ref(),
                Some(msg),
                "{payload:02x?}"
            );
        }
        lean
    }

    #[test]
    fn unknown_fields_are_skipped_like_serde_does() {
        let nested: &[u8] = &[
            0x92, 0x81, 0xa1, b'a', 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0xc4, 1, 7,
        ];
        let p = variant_with(
            "RequestShutdown",
            &[
                ("later", nested),
                ("kind", &[0xa6, b'r', b'e', b'b', b'o', b'o', b't']),
                ("exit_code", &[0xd0, 0x80]),
            ],
        );
        assert_eq!(
            agrees_with_serde(&p),
            Ok(SvmgrMsg::RequestShutdown {
                kind: ShutdownKind::Reboot,
                exit_code: Some(-128)
            })
        );
    }

    #[test]
    fn a_missing_option_is_none_and_a_missing_field_an_error() {
        let kind: &[u8] = &[0xa4, b'h', b'a', b'l', b't'];
        assert_eq!(
            agrees_with_serde(&variant_with("RequestShutdown", &[("kind", kind)])),
            Ok(SvmgrMsg::RequestShutdown {
                kind: ShutdownKind::Halt,
                exit_code: None
            })
        );
        assert_eq!(
            agrees_with_serde(&variant_with("RequestShutdown", &[("exit_code", &[1])])),
            Err(WireError::MissingField("kind"))
        );
        assert_eq!(
            agrees_with_serde(&variant_with("Hello", &[("version", &[1])])),
            Err(WireError::MissingField("peer"))
        );
    }

    #[test]
    fn a_repeated_field_is_refused() {
        let kind: &[u8] = &[0xa4, b'h', b'a', b'l', b't'];
        let p = variant_with("RequestShutdown", &[("kind", kind), ("kind", kind)]);
        assert_eq!(
            agrees_with_serde(&p),
            Err(WireError::DuplicateField("kind"))
        );
        assert!(decode_payload::<SvmgrMsg>(&p).is_err());
    }

    #[test]
    fn unit_variants_are_read_as_names_or_as_maps_to_nil() {
        assert_eq!(
            agrees_with_serde(&[0x81, 0xa7, b'R', b'e', b'c', b'l', b'a', b'i', b'm', 0xc0]),
            Ok(SvmgrMsg::Reclaim)
        );
        // Only nil may follow a unit variant's name.
        assert!(
            agrees_with_serde(&[0x81, 0xa7, b'R', b'e', b'c', b'l', b'a', b'i', b'm', 1]).is_err()
        );
        // A variant with content cannot be a bare name.
        assert_eq!(
            agrees_with_serde(&[0xa4, b'P', b'a', b'r', b'k']),
            Err(WireError::Unexpected)
        );
    }

    #[test]
    fn integers_out_of_range_are_refused() {
        let kind: &[u8] = &[0xa4, b'h', b'a', b'l', b't'];
        let big: &[u8] = &[0xce, 0x80, 0, 0, 0];
        assert_eq!(
            agrees_with_serde(&variant_with(
                "RequestShutdown",
                &[("kind", kind), ("exit_code", big)]
            )),
            Err(WireError::OutOfRange)
        );
        let peer: &[u8] = &[0xa1, b'x'];
        assert_eq!(
            agrees_with_serde(&variant_with(
                "Hello",
                &[("version", &[0xff]), ("peer", peer)]
            )),
            Err(WireError::OutOfRange)
        );
    }

    #[test]
    fn nesting_past_the_limit_is_refused_without_deep_recursion() {
        let mut deep = vec![0x91; 100_000];
        deep.push(0xc0);
        let p = variant_with("Park", &[("x", &deep), ("keys", &[0x90])]);
        assert_eq!(agrees_with_serde(&p), Err(WireError::TooDeep));
    }

    #[test]
    fn lengths_beyond_the_payload_are_truncation_not_allocation() {
        // An array claiming 2^32-1 keys in a few bytes.
        let p = variant_with("Park", &[("keys", &[0xdd, 0xff, 0xff, 0xff, 0xff])]);
        assert_eq!(agrees_with_serde(&p), Err(WireError::Truncated));
        let p = variant_with("Park", &[("x", &[0xdf, 0xff, 0xff, 0xff, 0xff])]);
        assert_eq!(agrees_with_serde(&p), Err(WireError::Truncated));
        assert_eq!(agrees_with_serde(&[]), Err(WireError::Truncated));
    }

    #[test]
    fn every_prefix_and_single_byte_change_of_real_messages_is_handled() {
        // A deterministic stand-in for the fuzzer: decoding never panics and never disagrees
        // with serde on any prefix or one-byte mutation of every real message.
        let samples: Vec<Vec<u8>> = svmgr_msgs()
            .iter()
            .filter(|m| !matches!(m, SvmgrMsg::Park { .. } | SvmgrMsg::Unpark { .. }))
            .take(200)
            .map(payload_of)
            .chain([payload_of(&SvmgrMsg::Park {
                keys: vec!["a\tb".into(), "c".into()],
            })])
            .collect();
        for p in &samples {
            for end in 0..p.len() {
                let _ = agrees_with_serde(&p[..end]);
            }
            for i in 0..p.len() {
                for b in [
                    0x00, 0x01, 0x7f, 0x80, 0x90, 0xa0, 0xc0, 0xc1, 0xcc, 0xd0, 0xdc, 0xff,
                ] {
                    let mut q = p.clone();
                    q[i] = b;
                    let _ = agrees_with_serde(&q);
                }
            }
        }
    }
}
