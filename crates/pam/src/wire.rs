//! The D-Bus wire format, as far as this module needs it: little-endian messages with the
//! basic types, empty arrays of structs, and header fields (D-Bus specification, "Message
//! Protocol"). Alignment is relative to the start of the message; the body starts 8-aligned, so
//! body offsets are aligned the same way.

/// Message types.
pub const METHOD_CALL: u8 = 1;
/// A reply.
pub const METHOD_RETURN: u8 = 2;
/// An error reply.
pub const ERROR: u8 = 3;

/// Header field codes.
const FIELD_PATH: u8 = 1;
const FIELD_INTERFACE: u8 = 2;
const FIELD_MEMBER: u8 = 3;
const FIELD_ERROR_NAME: u8 = 4;
const FIELD_REPLY_SERIAL: u8 = 5;
const FIELD_DESTINATION: u8 = 6;
const FIELD_SIGNATURE: u8 = 8;
const FIELD_UNIX_FDS: u8 = 9;

/// The largest message accepted (the specification's limit is 128 MiB; replies here are tiny).
pub const MAX_MESSAGE: usize = 1 << 20;

/// A malformed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(pub &'static str);

impl std::error::Error for WireError {}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed D-Bus message: {}", self.0)
    }
}

/// Appends values with D-Bus alignment.
#[derive(Debug, Default)]
pub struct Writer {
    /// The bytes so far.
    pub buf: Vec<u8>,
}

impl Writer {
    fn align(&mut self, n: usize) {
        while !self.buf.len().is_multiple_of(n) {
            self.buf.push(0);
        }
    }

    /// A byte (`y`).
    pub fn byte(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// A `u`.
    pub fn u32(&mut self, v: u32) {
        self.align(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A `b`.
    pub fn bool(&mut self, v: bool) {
        self.u32(u32::from(v));
    }

    /// An `s` or `o`.
    pub fn string(&mut self, s: &str) {
        let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
        self.u32(len);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    /// A `g`.
    pub fn signature(&mut self, s: &str) {
        self.buf.push(u8::try_from(s.len()).unwrap_or(u8::MAX));
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    /// An empty array whose elements are 8-aligned (structs): the length, then the padding
    /// to the first element.
    pub fn empty_struct_array(&mut self) {
        self.u32(0);
        self.align(8);
    }
}

/// Reads values with D-Bus alignment.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf` (which must start 8-aligned in its message).
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn align(&mut self, n: usize) -> Result<(), WireError> {
        let next = self.pos.div_ceil(n) * n;
        if next > self.buf.len() {
            return Err(WireError("truncated padding"));
        }
        self.pos = next;
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(WireError("length overflow"))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(WireError("truncated value"))?;
        self.pos = end;
        Ok(s)
    }

    /// A byte.
    pub fn byte(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    /// A `u` (also `h` and `b` on the wire).
    pub fn u32(&mut self) -> Result<u32, WireError> {
        self.align(4)?;
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A `b`.
    pub fn bool(&mut self) -> Result<bool, WireError> {
        match self.u32()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(WireError("boolean out of range")),
        }
    }

    /// An `s` or `o`.
    pub fn string(&mut self) -> Result<String, WireError> {
        let len = self.u32()? as usize;
        let s = self.take(len)?;
        if self.take(1)? != [0] {
            return Err(WireError("string without terminator"));
        }
        String::from_utf8(s.to_vec()).map_err(|_| WireError("string is not UTF-8"))
    }

    /// A `g`.
    pub fn signature(&mut self) -> Result<String, WireError> {
        let len = usize::from(self.byte()?);
        let s = self.take(len)?;
        if self.take(1)? != [0] {
            return Err(WireError("signature without terminator"));
        }
        String::from_utf8(s.to_vec()).map_err(|_| WireError("signature is not UTF-8"))
    }

    /// Skips one value of the basic type `code`.
    fn skip_basic(&mut self, code: u8) -> Result<(), WireError> {
        match code {
            b'y' => self.byte().map(drop),
            b'n' | b'q' => {
                self.align(2)?;
                self.take(2).map(drop)
            }
            b'b' | b'i' | b'u' | b'h' => self.u32().map(drop),
            b'x' | b't' | b'd' => {
                self.align(8)?;
                self.take(8).map(drop)
            }
            b's' | b'o' => self.string().map(drop),
            b'g' => self.signature().map(drop),
            _ => Err(WireError("unsupported header field type")),
        }
    }
}

/// A method call to send.
#[derive(Debug)]
pub struct Call<'a> {
    /// Serial number (non-zero).
    pub serial: u32,
    /// Destination bus name.
    pub destination: &'a str,
    /// Object path.
    pub path: &'a str,
    /// Interface.
    pub interface: &'a str,
    /// Member.
    pub member: &'a str,
    /// Body signature (empty for none).
    pub signature: &'a str,
    /// The marshalled body (built with a [`Writer`] from offset 0).
    pub body: &'a [u8],
}

/// Marshals a method call.
pub fn method_call(c: &Call<'_>) -> Vec<u8> {
    let mut w = Writer::default();
    w.byte(b'l');
    w.byte(METHOD_CALL);
    w.byte(0);
    w.byte(1);
    w.u32(u32::try_from(c.body.len()).unwrap_or(u32::MAX));
    w.u32(c.serial);
    let mut fields = Writer::default();
    // The fields array starts at offset 16 of the message, which is 8-aligned, so aligning
    // within `fields` from 0 is the same.
    let mut field = |code: u8, sig: &str, write: &dyn Fn(&mut Writer)| {
        fields.align(8);
        fields.byte(code);
        fields.signature(sig);
        write(&mut fields);
    };
    field(FIELD_PATH, "o", &|w| w.string(c.path));
    field(FIELD_INTERFACE, "s", &|w| w.string(c.interface));
    field(FIELD_MEMBER, "s", &|w| w.string(c.member));
    field(FIELD_DESTINATION, "s", &|w| w.string(c.destination));
    if !c.signature.is_empty() {
        field(FIELD_SIGNATURE, "g", &|w| w.signature(c.signature));
    }
    w.u32(u32::try_from(fields.buf.len()).unwrap_or(u32::MAX));
    w.buf.extend_from_slice(&fields.buf);
    w.align(8);
    w.buf.extend_from_slice(c.body);
    w.buf
}

/// A received message's header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// Message type.
    pub kind: u8,
    /// Its serial.
    pub serial: u32,
    /// The serial it answers.
    pub reply_serial: Option<u32>,
    /// For errors: the error name.
    pub error_name: Option<String>,
    /// The body signature.
    pub signature: String,
    /// How many fds came with it.
    pub unix_fds: u32,
}

/// The total length of the message at the start of `buf`, once its first 16 bytes are there.
pub fn message_len(buf: &[u8]) -> Result<Option<usize>, WireError> {
    if buf.len() < 16 {
        return Ok(None);
    }
    if buf[0] != b'l' {
        return Err(WireError("not little-endian"));
    }
    let le = |i: usize| u32::from_le_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]) as usize;
    let body = le(4);
    let fields = le(12);
    let header = (16 + fields).div_ceil(8) * 8;
    let total = header
        .checked_add(body)
        .ok_or(WireError("length overflow"))?;
    if total > MAX_MESSAGE {
        return Err(WireError("message too large"));
    }
    Ok(Some(total))
}

/// Splits a complete message into its header and body.
pub fn parse(msg: &[u8]) -> Result<(Header, &[u8]), WireError> {
    let total = message_len(msg)?.ok_or(WireError("truncated header"))?;
    if msg.len() < total {
        return Err(WireError("truncated message"));
    }
    let mut r = Reader::new(msg);
    r.take(1)?;
    let mut h = Header {
        kind: r.byte()?,
        ..Header::default()
    };
    r.take(2)?;
    let body_len = r.u32()? as usize;
    h.serial = r.u32()?;
    let fields_len = r.u32()? as usize;
    let fields_end = 16 + fields_len;
    while r.pos < fields_end {
        r.align(8)?;
        let code = r.byte()?;
        let sig = r.signature()?;
        let &[t] = sig.as_bytes() else {
            return Err(WireError("header field of a container type"));
        };
        match (code, t) {
            (FIELD_REPLY_SERIAL, b'u') => h.reply_serial = Some(r.u32()?),
            (FIELD_ERROR_NAME, b's') => h.error_name = Some(r.string()?),
            (FIELD_SIGNATURE, b'g') => h.signature = r.signature()?,
            (FIELD_UNIX_FDS, b'u') => h.unix_fds = r.u32()?,
            _ => r.skip_basic(t)?,
        }
    }
    if r.pos != fields_end {
        return Err(WireError("header fields overrun"));
    }
    r.align(8)?;
    let body = r.take(body_len)?;
    Ok((h, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_laid_out_as_the_specification_says() {
        let mut body = Writer::default();
        body.string("c1");
        let msg = method_call(&Call {
            serial: 7,
            destination: "org.freedesktop.login1",
            path: "/org/freedesktop/login1",
            interface: "org.freedesktop.login1.Manager",
            member: "ReleaseSession",
            signature: "s",
            body: &body.buf,
        });
        assert_eq!(&msg[..4], b"l\x01\x00\x01");
        assert_eq!(u32::from_le_bytes(msg[4..8].try_into().unwrap()), 7);
        assert_eq!(u32::from_le_bytes(msg[8..12].try_into().unwrap()), 7);
        assert_eq!(message_len(&msg), Ok(Some(msg.len())));
        let (h, b) = parse(&msg).unwrap();
        assert_eq!(h.kind, METHOD_CALL);
        assert_eq!(h.serial, 7);
        assert_eq!(h.signature, "s");
        assert_eq!(Reader::new(b).string().unwrap(), "c1");
    }

    #[test]
    fn values_are_aligned_to_their_size() {
        let mut w = Writer::default();
        w.byte(1);
        w.u32(2);
        w.string("ab");
        w.bool(true);
        w.empty_struct_array();
        assert_eq!(w.buf.len(), 24);
        let mut r = Reader::new(&w.buf);
        assert_eq!(r.byte().unwrap(), 1);
        assert_eq!(r.u32().unwrap(), 2);
        assert_eq!(r.string().unwrap(), "ab");
        assert!(r.bool().unwrap());
        assert_eq!(r.u32().unwrap(), 0);
    }

    #[test]
    fn truncated_or_foreign_messages_are_refused() {
        assert_eq!(message_len(b"l\x02"), Ok(None));
        assert!(message_len(b"B\x02\x00\x01xxxxxxxxxxxxxxxxxxxx").is_err());
        let mut w = Writer::default();
        w.string("x");
        assert!(Reader::new(&w.buf[..5]).string().is_err());
        assert!(Reader::new(&[2, 0, 0, 0]).bool().is_err());
    }
}
