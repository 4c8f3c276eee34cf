//! Just enough of the Kafka wire protocol to find the broker addresses in the
//! responses that carry them (Metadata and FindCoordinator, every version a
//! 3.x broker speaks), so that a relay can replace them with addresses the
//! harness can dial. Everything else in a frame is left byte for byte.

use std::ops::Range;

pub const METADATA: i16 = 3;
pub const FIND_COORDINATOR: i16 = 10;

/// The start of every request frame (after its length prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

pub fn request_header(frame: &[u8]) -> Option<RequestHeader> {
    let mut reader = Reader::new(frame);
    Some(RequestHeader {
        api_key: reader.i16().ok()?,
        api_version: reader.i16().ok()?,
        correlation_id: reader.i32().ok()?,
    })
}

/// The correlation id a response frame answers.
pub fn response_correlation(frame: &[u8]) -> Option<i32> {
    Reader::new(frame).i32().ok()
}

/// Whether responses to this request name brokers by address.
pub fn carries_addresses(request: &RequestHeader) -> bool {
    matches!(request.api_key, METADATA | FIND_COORDINATOR)
}

/// One broker address inside a response frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressSlot {
    pub host: String,
    pub port: i32,
    host_bytes: Range<usize>,
    port_at: usize,
    compact: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Malformed(pub String);

/// The broker addresses in a response to `request`, in frame order.
pub fn address_slots(frame: &[u8], request: &RequestHeader) -> Result<Vec<AddressSlot>, Malformed> {
    let mut reader = Reader::new(frame);
    let version = request.api_version;
    match request.api_key {
        METADATA => metadata_slots(&mut reader, version),
        FIND_COORDINATOR => coordinator_slots(&mut reader, version),
        _ => Ok(Vec::new()),
    }
    .map_err(|why| Malformed(format!("api {} v{version}: {why}", request.api_key)))
}

/// The frame with every slot's address replaced by `replacement(host, port)`.
pub fn rewrite(frame: &[u8], slots: &[AddressSlot], replacement: impl Fn(&str, i32) -> (String, i32)) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame.len() + 64);
    let mut copied = 0;
    for slot in slots {
        let (host, port) = replacement(&slot.host, slot.port);
        out.extend_from_slice(&frame[copied..slot.host_bytes.start]);
        write_string(&mut out, &host, slot.compact);
        out.extend_from_slice(&frame[slot.host_bytes.end..slot.port_at]);
        out.extend_from_slice(&port.to_be_bytes());
        copied = slot.port_at + 4;
    }
    out.extend_from_slice(&frame[copied..]);
    out
}

fn metadata_slots(reader: &mut Reader, version: i16) -> Result<Vec<AddressSlot>, String> {
    let flexible = version >= 9;
    reader.response_header(flexible)?;
    if version >= 3 {
        reader.i32()?; // throttle_time_ms
    }
    let mut slots = Vec::new();
    for _ in 0..reader.array_len(flexible)? {
        reader.i32()?; // node_id
        slots.push(reader.address(flexible)?);
        if version >= 1 {
            reader.nullable_string(flexible)?; // rack
        }
        if flexible {
            reader.tagged_fields()?;
        }
    }
    Ok(slots)
}

fn coordinator_slots(reader: &mut Reader, version: i16) -> Result<Vec<AddressSlot>, String> {
    let flexible = version >= 3;
    reader.response_header(flexible)?;
    if version >= 1 {
        reader.i32()?; // throttle_time_ms
    }
    if version < 4 {
        reader.i16()?; // error_code
        if version >= 1 {
            reader.nullable_string(flexible)?; // error_message
        }
        reader.i32()?; // node_id
        return Ok(vec![reader.address(flexible)?]);
    }
    let mut slots = Vec::new();
    for _ in 0..reader.array_len(true)? {
        reader.nullable_string(true)?; // key
        reader.i32()?; // node_id
        slots.push(reader.address(true)?);
        reader.i16()?; // error_code
        reader.nullable_string(true)?; // error_message
        reader.tagged_fields()?;
    }
    Ok(slots)
}

fn write_string(out: &mut Vec<u8>, text: &str, compact: bool) {
    if compact {
        write_uvarint(out, text.len() as u64 + 1);
    } else {
        out.extend_from_slice(&(text.len() as i16).to_be_bytes());
    }
    out.extend_from_slice(text.as_bytes());
}

fn write_uvarint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    fn take(&mut self, count: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(count).filter(|end| *end <= self.bytes.len());
        let end = end.ok_or_else(|| format!("truncated at byte {} (wanted {count} more)", self.at))?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().expect("two bytes")))
    }

    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().expect("four bytes")))
    }

    fn uvarint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(format!("varint too long at byte {}", self.at))
    }

    fn response_header(&mut self, flexible: bool) -> Result<(), String> {
        self.i32()?; // correlation_id
        if flexible {
            self.tagged_fields()?;
        }
        Ok(())
    }

    fn tagged_fields(&mut self) -> Result<(), String> {
        for _ in 0..self.uvarint()? {
            self.uvarint()?; // tag
            let size = self.uvarint()? as usize;
            self.take(size)?;
        }
        Ok(())
    }

    fn array_len(&mut self, compact: bool) -> Result<usize, String> {
        let len = if compact { self.uvarint()? as i64 - 1 } else { i64::from(self.i32()?) };
        Ok(len.max(0) as usize)
    }

    /// A string's length, or None for a null one.
    fn string_len(&mut self, compact: bool) -> Result<Option<usize>, String> {
        let len = if compact { self.uvarint()? as i64 - 1 } else { i64::from(self.i16()?) };
        Ok((len >= 0).then_some(len as usize))
    }

    fn nullable_string(&mut self, compact: bool) -> Result<(), String> {
        if let Some(len) = self.string_len(compact)? {
            self.take(len)?;
        }
        Ok(())
    }

    fn address(&mut self, compact: bool) -> Result<AddressSlot, String> {
        let start = self.at;
        let len = self.string_len(compact)?.ok_or("a broker with a null host")?;
        let host = String::from_utf8_lossy(self.take(len)?).into_owned();
        let host_bytes = start..self.at;
        let port_at = self.at;
        let port = self.i32()?;
        Ok(AddressSlot { host, port, host_bytes, port_at, compact })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds frames field by field, as a broker would.
    #[derive(Default)]
    struct Frame(Vec<u8>);

    impl Frame {
        fn i16(mut self, value: i16) -> Self {
            self.0.extend_from_slice(&value.to_be_bytes());
            self
        }
        fn i32(mut self, value: i32) -> Self {
            self.0.extend_from_slice(&value.to_be_bytes());
            self
        }
        fn string(mut self, text: &str, compact: bool) -> Self {
            write_string(&mut self.0, text, compact);
            self
        }
        fn null_string(self, compact: bool) -> Self {
            if compact { self.uvarint(0) } else { self.i16(-1) }
        }
        fn uvarint(mut self, value: u64) -> Self {
            write_uvarint(&mut self.0, value);
            self
        }
        fn raw(mut self, bytes: &[u8]) -> Self {
            self.0.extend_from_slice(bytes);
            self
        }
    }

    const TAIL: &[u8] = b"topics and partitions, untouched";

    fn header(api_key: i16, api_version: i16) -> RequestHeader {
        RequestHeader { api_key, api_version, correlation_id: 7 }
    }

    fn to_local(host: &str, port: i32) -> (String, i32) {
        let ordinal = host.split('.').next().unwrap().rsplit('-').next().unwrap();
        (format!("127.0.0.{}", ordinal.parse::<u8>().unwrap() + 1), 40000 + port)
    }

    fn brokers_v1(hosts: &[&str]) -> Vec<u8> {
        let mut frame = Frame::default().i32(7).i32(hosts.len() as i32);
        for (id, host) in hosts.iter().enumerate() {
            frame = frame.i32(id as i32).string(host, false).i32(9092).string("rack-a", false);
        }
        frame.raw(TAIL).0
    }

    #[test]
    fn reads_request_headers() {
        let frame = Frame::default().i16(3).i16(12).i32(99).raw(b"rest").0;
        assert_eq!(request_header(&frame), Some(RequestHeader { api_key: 3, api_version: 12, correlation_id: 99 }));
        assert_eq!(request_header(&frame[..5]), None);
    }

    #[test]
    fn rewrites_every_broker_of_a_metadata_v1_response() {
        let frame = brokers_v1(&["kafka-0.kafka-hs.ns.svc", "kafka-1.kafka-hs.ns.svc"]);
        let slots = address_slots(&frame, &header(METADATA, 1)).unwrap();
        assert_eq!(
            slots.iter().map(|s| (s.host.as_str(), s.port)).collect::<Vec<_>>(),
            [("kafka-0.kafka-hs.ns.svc", 9092), ("kafka-1.kafka-hs.ns.svc", 9092)]
        );
        let rewritten = rewrite(&frame, &slots, to_local);
        let mut expected = Frame::default().i32(7).i32(2);
        for (id, host) in ["127.0.0.1", "127.0.0.2"].iter().enumerate() {
            expected = expected.i32(id as i32).string(host, false).i32(49092).string("rack-a", false);
        }
        assert_eq!(rewritten, expected.raw(TAIL).0);
        let again = address_slots(&rewritten, &header(METADATA, 1)).unwrap();
        assert_eq!(
            again.iter().map(|s| (s.host.as_str(), s.port)).collect::<Vec<_>>(),
            [("127.0.0.1", 49092), ("127.0.0.2", 49092)]
        );
        assert!(rewritten.ends_with(TAIL));
    }

    #[test]
    fn reads_metadata_v0_without_racks_and_v3_with_throttle() {
        let v0 = Frame::default().i32(7).i32(1).i32(0).string("kafka-2.x", false).i32(9092).raw(TAIL).0;
        let slots = address_slots(&v0, &header(METADATA, 0)).unwrap();
        assert_eq!((slots[0].host.as_str(), slots[0].port), ("kafka-2.x", 9092));
        let v3 = Frame::default().i32(7).i32(0).i32(1).i32(0).string("kafka-2.x", false).i32(9093);
        let v3 = v3.null_string(false).raw(TAIL).0;
        let slots = address_slots(&v3, &header(METADATA, 3)).unwrap();
        assert_eq!((slots[0].host.as_str(), slots[0].port), ("kafka-2.x", 9093));
        assert!(rewrite(&v3, &slots, to_local).ends_with(TAIL));
    }

    #[test]
    fn rewrites_flexible_metadata_with_tagged_fields() {
        // v12: header tags, throttle, compact array of 2 brokers with a
        // tagged field on the first, then the rest of the response.
        let frame = Frame::default().i32(7).uvarint(0).i32(0).uvarint(3);
        let frame = frame.i32(0).string("kafka-0.hs", true).i32(9092).null_string(true);
        let frame = frame.uvarint(1).uvarint(5).uvarint(2).raw(b"xy");
        let frame = frame.i32(1).string("kafka-1.hs", true).i32(9092).string("r", true).uvarint(0).raw(TAIL).0;
        let slots = address_slots(&frame, &header(METADATA, 12)).unwrap();
        assert_eq!(slots.len(), 2);
        let rewritten = rewrite(&frame, &slots, to_local);
        let again = address_slots(&rewritten, &header(METADATA, 12)).unwrap();
        assert_eq!(
            again.iter().map(|s| (s.host.as_str(), s.port)).collect::<Vec<_>>(),
            [("127.0.0.1", 49092), ("127.0.0.2", 49092)]
        );
        assert!(rewritten.ends_with(TAIL));
    }

    #[test]
    fn rewrites_find_coordinator_in_its_single_and_batched_shapes() {
        let v0 = Frame::default().i32(7).i16(0).i32(1).string("kafka-1.hs", false).i32(9092);
        let v2 = Frame::default().i32(7).i32(0).i16(0).null_string(false).i32(1).string("kafka-1.hs", false).i32(9092);
        let v3 = Frame::default().i32(7).uvarint(0).i32(0).i16(0).null_string(true).i32(1);
        let v3 = v3.string("kafka-1.hs", true).i32(9092).uvarint(0);
        let v4 = Frame::default().i32(7).uvarint(0).i32(0).uvarint(2).string("group", true).i32(1);
        let v4 = v4.string("kafka-1.hs", true).i32(9092).i16(0).null_string(true).uvarint(0).uvarint(0);
        for (version, frame) in [(0, v0.0), (2, v2.0), (3, v3.0), (4, v4.0)] {
            let request = header(FIND_COORDINATOR, version);
            let slots = address_slots(&frame, &request).unwrap();
            assert_eq!(slots.len(), 1, "v{version}");
            let rewritten = rewrite(&frame, &slots, to_local);
            let again = address_slots(&rewritten, &request).unwrap();
            assert_eq!((again[0].host.as_str(), again[0].port), ("127.0.0.2", 49092), "v{version}");
        }
    }

    #[test]
    fn a_truncated_response_is_malformed_not_a_panic() {
        let frame = brokers_v1(&["kafka-0.kafka-hs.ns.svc"]);
        let error = address_slots(&frame[..20], &header(METADATA, 1)).unwrap_err();
        assert!(error.0.contains("truncated"), "{error:?}");
    }

    #[test]
    fn only_metadata_and_coordinator_responses_carry_addresses() {
        assert!(carries_addresses(&header(METADATA, 12)));
        assert!(carries_addresses(&header(FIND_COORDINATOR, 4)));
        assert!(!carries_addresses(&header(0, 9))); // Produce
        assert!(!carries_addresses(&header(1, 13))); // Fetch
    }
}
