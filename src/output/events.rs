//! Server-sent events framing: complete events out of the pieces a body arrives in, split
//! the way the SDKs' decoders split them. Lines end in `\n`, `\r\n` or `\r`; an empty line
//! ends an event.

/// Where the search for the end of the first buffered event resumes, so a large event
/// arriving in many pieces is scanned once, not once per piece.
#[derive(Debug, Clone, Copy, Default)]
struct Scan {
    /// The start of the line being read.
    line_start: usize,
    /// The first byte not looked at yet.
    at: usize,
}

/// Bytes of events not complete yet.
#[derive(Debug, Default)]
pub struct Events {
    buf: Vec<u8>,
    scan: Scan,
}

impl Events {
    pub fn push(&mut self, piece: &[u8]) {
        self.buf.extend_from_slice(piece);
    }

    /// Bytes waiting for the rest of their event.
    pub fn waiting(&self) -> usize {
        self.buf.len()
    }

    /// Hands each complete event (through the blank line ending it) to `each`, in order,
    /// while it returns `true`; keeps the rest.
    pub fn take(&mut self, mut each: impl FnMut(&[u8]) -> bool) {
        let mut start = 0;
        let mut scan = self.scan;
        loop {
            match event_end(&self.buf, scan) {
                Ok(end) => {
                    let event = self.buf.get(start..end).unwrap_or_default();
                    start = end;
                    scan = Scan {
                        line_start: end,
                        at: end,
                    };
                    if !each(event) {
                        break;
                    }
                }
                Err(resume) => {
                    scan = resume;
                    break;
                }
            }
        }
        self.buf.drain(..start.min(self.buf.len()));
        self.scan = Scan {
            line_start: scan.line_start.saturating_sub(start),
            at: scan.at.saturating_sub(start),
        };
    }

    /// What is left when the body ends: an event the stream ended in the middle of.
    pub fn rest(self) -> Vec<u8> {
        self.buf
    }
}

/// The end of the first event of `buf` (the offset after its blank line), scanning on from
/// `scan`; else where to resume once more bytes arrive. A `\r` at the end may be half of a
/// `\r\n`, so it is looked at again.
fn event_end(buf: &[u8], scan: Scan) -> Result<usize, Scan> {
    let Scan { mut line_start, at } = scan;
    let mut i = at;
    while let Some(&b) = buf.get(i) {
        if b != b'\r' && b != b'\n' {
            i += 1;
            continue;
        }
        let mut next = i + 1;
        if b == b'\r' {
            match buf.get(next) {
                Some(b'\n') => next += 1,
                None => return Err(Scan { line_start, at: i }),
                Some(_) => {}
            }
        }
        if i == line_start {
            return Ok(next);
        }
        line_start = next;
        i = next;
    }
    Err(Scan { line_start, at: i })
}

/// Why clients would read this event differently, if they would; such an event is refused,
/// as aigate cannot judge what each of them sees.
/// - A byte-order mark opening a line: the JavaScript SDKs drop it, the Python SDKs keep it
///   as part of the field name (and so ignore the line).
/// - A carriage return alone: the SSE standard, and the Python and JavaScript SDKs, end a
///   line there; Go's (mcp-go, go-sdk) read lines up to `\n` and trim the `\r`, so
///   `data:\r{…}` is an empty field to one reader and a message to the other.
pub fn ambiguity(event: &[u8]) -> Option<&'static str> {
    const BOM: &[u8] = "\u{feff}".as_bytes();
    let bom = event.starts_with(BOM)
        || event
            .windows(BOM.len() + 1)
            .any(|w| matches!(w.first(), Some(b'\n' | b'\r')) && w.get(1..) == Some(BOM));
    if bom {
        return Some("a byte-order mark opens a line of the answer: clients read it differently");
    }
    let lone_cr =
        event.windows(2).any(|w| matches!(w, [b'\r', next] if *next != b'\n')) || event.last() == Some(&b'\r');
    if lone_cr {
        return Some("a carriage return alone ends a line of the answer: clients read it differently");
    }
    // A line that is no field of the standard (`{"jsonrpc":…}` labelled an event stream)
    // is ignored by SSE decoders, so aigate would read nothing in it, while a client that
    // falls back to reading the body as JSON reads all of it.
    let unknown = event.split(|b| matches!(b, b'\n' | b'\r')).any(|line| {
        let field = line.split(|b| *b == b':').next().unwrap_or(line);
        !line.is_empty() && !line.starts_with(b":") && !matches!(field, b"data" | b"event" | b"id" | b"retry")
    });
    unknown.then_some(
        "a line of the answer is no event field (data, event, id, retry) or comment: clients read it differently",
    )
}

/// The `event` name and the joined `data` lines of one event. A byte-order mark opening a
/// line is dropped, as some clients' decoders drop it (the JavaScript SDKs decode line by
/// line): a field it hid from one reader must not be hidden from aigate.
pub fn fields(event: &[u8]) -> Option<(Option<&str>, String)> {
    let text = std::str::from_utf8(event).ok()?;
    let (mut name, mut data): (Option<&str>, Option<String>) = (None, None);
    for line in text.split(['\n', '\r']) {
        let line = line.strip_prefix('\u{feff}').unwrap_or(line);
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => name = Some(value),
            "data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_string()),
            },
            _ => {}
        }
    }
    Some((name, data.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(body: &[u8], piece: usize) -> (Vec<Vec<u8>>, Vec<u8>) {
        let mut e = Events::default();
        let mut out = Vec::new();
        for p in body.chunks(piece) {
            e.push(p);
            e.take(|ev| {
                out.push(ev.to_vec());
                true
            });
        }
        (out, e.rest())
    }

    #[test]
    fn events_end_at_blank_lines_of_any_line_ending() {
        let body = b"data: a\n\nevent: x\r\ndata: b\r\n\r\ndata: c\r\rdata: d";
        for piece in [1, 2, 3, body.len()] {
            let (events, rest) = split(body, piece);
            assert_eq!(
                events,
                [
                    b"data: a\n\n".to_vec(),
                    b"event: x\r\ndata: b\r\n\r\n".to_vec(),
                    b"data: c\r\r".to_vec()
                ],
                "pieces of {piece}"
            );
            assert_eq!(rest, b"data: d");
        }
    }

    #[test]
    fn a_large_event_in_small_pieces_is_scanned_once() {
        // One 1 MiB line in 64-byte pieces: rescanning it per piece would read 8 GiB.
        let mut body = b"data: ".to_vec();
        body.extend(std::iter::repeat_n(b'a', 1 << 20));
        body.extend_from_slice(b"\n\n");
        let (events, rest) = split(&body, 64);
        assert_eq!((events.len(), rest.len()), (1, 0));
        assert_eq!(events[0].len(), body.len());
    }

    #[test]
    fn fields_join_data_lines_and_drop_a_leading_byte_order_mark() {
        let (name, data) = fields("\u{feff}event:message\ndata: {\"a\":\ndata:1}\n: comment\n\n".as_bytes()).unwrap();
        assert_eq!((name, data.as_str()), (Some("message"), "{\"a\":\n1}"));
        let (_, data) = fields("\u{feff}data: x\n\n".as_bytes()).unwrap();
        assert_eq!(data, "x");
        assert!(fields(b"data: \xff\n\n").is_none());
    }
}
