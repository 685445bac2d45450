//! Encoding and incremental decoding of frames.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{HEADER_LEN, MAGIC, MAX_FRAME};

/// Why a frame could not be produced or understood.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The first two bytes were not `DM`.
    #[error("bad frame magic {0:#04x} {1:#04x}")]
    BadMagic(u8, u8),
    /// The header announced a payload larger than [`MAX_FRAME`].
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    /// The payload is not a valid encoding of the expected type.
    #[error("cannot decode message")]
    Decode(#[source] rmp_serde::decode::Error),
    /// The value could not be encoded.
    #[error("cannot encode message")]
    Encode(#[source] rmp_serde::encode::Error),
}

/// Encodes `msg` as one complete frame.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, ProtoError> {
    let mut out = Vec::with_capacity(128);
    encode_into(msg, &mut out)?;
    Ok(out)
}

/// Appends one complete frame holding `msg` to `out`.
pub fn encode_into<T: Serialize>(msg: &T, out: &mut Vec<u8>) -> Result<(), ProtoError> {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[0; 4]);
    if let Err(e) = rmp_serde::encode::write_named(out, msg) {
        out.truncate(start);
        return Err(ProtoError::Encode(e));
    }
    let len = out.len() - start - HEADER_LEN;
    if len > MAX_FRAME {
        out.truncate(start);
        return Err(ProtoError::TooLarge(len));
    }
    // The length fits in u32 because MAX_FRAME does.
    let len_bytes = (len as u32).to_be_bytes();
    out[start + 2..start + HEADER_LEN].copy_from_slice(&len_bytes);
    Ok(())
}

/// Deepest nesting of arrays and maps a payload may have when decoded. rmp-serde's default
/// (1024) lets a frame of a few kilobytes holding a deeply nested [`TreeNode`](crate::TreeNode)
/// overflow a 2 MiB thread stack in a debug build; 128 still fits a supervisor tree 60 levels
/// deep, far more than any configuration has.
const MAX_DEPTH: usize = 128;

/// Decodes a bare payload (without header), refusing arrays and maps nested more than 128
/// deep.
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, ProtoError> {
    let mut de = rmp_serde::Deserializer::from_read_ref(payload);
    de.set_max_depth(MAX_DEPTH);
    T::deserialize(&mut de).map_err(ProtoError::Decode)
}

/// Accumulates bytes from a stream and yields complete frames.
///
/// Errors are sticky in the sense that the caller should drop the connection: after a bad
/// magic or an oversized header the stream cannot be resynchronised reliably.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Number of buffered bytes not yet consumed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Checks the header of the buffered data without consuming anything, so a reader can
    /// refuse an oversized frame before reading its body.
    pub fn check_header(&self) -> Result<(), ProtoError> {
        if self.buf.len() >= 2 && self.buf[..2] != MAGIC {
            return Err(ProtoError::BadMagic(self.buf[0], self.buf[1]));
        }
        if self.buf.len() >= HEADER_LEN {
            let len = u32::from_be_bytes([self.buf[2], self.buf[3], self.buf[4], self.buf[5]]);
            let len = len as usize;
            if len > MAX_FRAME {
                return Err(ProtoError::TooLarge(len));
            }
        }
        Ok(())
    }

    /// Returns the next complete payload, if one is buffered.
    pub fn next_payload(&mut self) -> Result<Option<Vec<u8>>, ProtoError> {
        self.check_header()?;
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[2], self.buf[3], self.buf[4], self.buf[5]]) as usize;
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let payload = self.buf[HEADER_LEN..HEADER_LEN + len].to_vec();
        self.buf.drain(..HEADER_LEN + len);
        Ok(Some(payload))
    }

    /// Returns the next complete message, if one is buffered.
    // Not an Iterator: decoding is fallible and generic over the message type.
    #[allow(clippy::should_implement_trait)]
    pub fn next<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ProtoError> {
        match self.next_payload()? {
            Some(p) => decode_payload(&p).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InitMsg, NodeKind, Request, Response, ServiceState, ShutdownKind, TreeNode};

    #[test]
    fn round_trips_a_request_through_a_split_stream() {
        let frame = encode(&Request::Status {
            names: vec!["syslog".into()],
        })
        .unwrap();
        let mut dec = FrameDecoder::new();
        for b in &frame[..frame.len() - 1] {
            dec.push(&[*b]);
            assert!(dec.next::<Request>().unwrap().is_none());
        }
        dec.push(&frame[frame.len() - 1..]);
        let got: Request = dec.next().unwrap().unwrap();
        assert_eq!(
            got,
            Request::Status {
                names: vec!["syslog".into()]
            }
        );
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn decodes_two_frames_pushed_at_once() {
        let mut bytes = encode(&InitMsg::Heartbeat).unwrap();
        encode_into(
            &InitMsg::Shutdown {
                kind: ShutdownKind::Reboot,
            },
            &mut bytes,
        )
        .unwrap();
        let mut dec = FrameDecoder::new();
        dec.push(&bytes);
        assert_eq!(dec.next::<InitMsg>().unwrap(), Some(InitMsg::Heartbeat));
        assert_eq!(
            dec.next::<InitMsg>().unwrap(),
            Some(InitMsg::Shutdown {
                kind: ShutdownKind::Reboot
            })
        );
        assert_eq!(dec.next::<InitMsg>().unwrap(), None);
    }

    #[test]
    fn refuses_bad_magic() {
        let mut dec = FrameDecoder::new();
        dec.push(b"XX\0\0\0\0");
        assert!(matches!(
            dec.next::<Request>(),
            Err(ProtoError::BadMagic(b'X', b'X'))
        ));
    }

    #[test]
    fn refuses_oversized_header_before_the_body_arrives() {
        let mut dec = FrameDecoder::new();
        dec.push(b"DM");
        dec.push(&((MAX_FRAME as u32) + 1).to_be_bytes());
        assert!(matches!(dec.check_header(), Err(ProtoError::TooLarge(_))));
    }

    #[test]
    fn garbage_payload_is_a_decode_error_not_a_panic() {
        let mut dec = FrameDecoder::new();
        dec.push(b"DM\0\0\0\x03\xc1\xc1\xc1");
        assert!(matches!(dec.next::<Response>(), Err(ProtoError::Decode(_))));
    }

    /// A message as a bare payload.
    fn bare<T: Serialize>(msg: &T) -> Vec<u8> {
        encode(msg).unwrap()[HEADER_LEN..].to_vec()
    }

    /// A `Response::Tree` of `levels` nodes, each the only child of the one before, built from
    /// bytes (encoding such a tree would recurse as deeply as decoding it).
    fn nested_tree_payload(levels: usize) -> Vec<u8> {
        let leaf = TreeNode {
            name: "x".into(),
            node: NodeKind::Service {
                state: ServiceState::Running,
                pid: None,
            },
            children: vec![],
        };
        let parent = TreeNode {
            children: vec![leaf.clone()],
            ..leaf.clone()
        };
        let leaf_bytes = bare(&leaf);
        // `children` is the last field, so a parent is a prefix followed by its child.
        let parent_bytes = bare(&parent);
        let level = &parent_bytes[..parent_bytes.len() - leaf_bytes.len()];
        let response = bare(&Response::Tree(leaf));
        let mut out = response[..response.len() - leaf_bytes.len()].to_vec();
        for _ in 0..levels {
            out.extend_from_slice(level);
        }
        out.extend_from_slice(&leaf_bytes);
        out
    }

    #[test]
    fn deeply_nested_payloads_are_refused_before_the_stack_runs_out() {
        // A thread with the usual 2 MiB stack, where rmp-serde's own limit was not enough.
        let decode = |levels: usize| {
            let payload = nested_tree_payload(levels);
            std::thread::Builder::new()
                .stack_size(2 << 20)
                .spawn(move || match decode_payload::<Response>(&payload) {
                    Ok(Response::Tree(_)) => Ok(()),
                    Ok(other) => panic!("decoded as {other:?}"),
                    Err(err) => Err(err),
                })
                .unwrap()
                .join()
                .unwrap()
        };
        assert!(decode(60).is_ok());
        for levels in [70, 300, 100_000] {
            assert!(
                matches!(decode(levels), Err(ProtoError::Decode(_))),
                "{levels}"
            );
        }
    }

    #[test]
    fn header_encodes_payload_length_big_endian() {
        let frame = encode(&InitMsg::Heartbeat).unwrap();
        assert_eq!(&frame[..2], b"DM");
        let len = u32::from_be_bytes([frame[2], frame[3], frame[4], frame[5]]) as usize;
        assert_eq!(len, frame.len() - HEADER_LEN);
    }
}
