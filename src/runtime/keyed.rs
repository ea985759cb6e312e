//! One hop for keyed input (`kafka.input_keyed = true`), Kafka Streams' own optimisation: when
//! the alerts topic is already partitioned the way the repartition topic would be, the processor
//! reads it directly and the repartition hop (a produce, a fetch and a decode per alert) goes.
//!
//! **The contract.** Each record on `topics.alerts` carries as its key the alert's *routing
//! key* — the six lowercase hex digits of the 24-bit routing token of its correlation key, the
//! same key Klaxon writes on its repartition topic ([`routing_key`]; `klaxon route-key` prints it
//! for alerts on stdin) — and sits on the partition that key maps to: `crc32(key) %
//! state.partitions`, which is where librdkafka's default partitioner (`consistent_random`)
//! puts a keyed record ([`partition_for`]). The alerts topic must have `state.partitions`
//! partitions (checked at start).
//!
//! Why the routing key and not, say, the raw `incident_key`: commands name an incident by its id,
//! which embeds the routing token and nothing more of the correlation key, so the token is the
//! only thing both an alert and a command addressed to its incident can be partitioned by. A
//! producer keying by anything else would put an incident's alerts on one partition and its
//! commands on another.
//!
//! **Verified, not trusted.** The processor decodes each record, computes its routing key as the
//! router would, and applies it directly only when the record's key and partition are the ones
//! computed. Anything else is **re-routed** through the repartition topic, exactly as the
//! two-stage path would have routed it, rather than dead-lettered: a mis-keyed alert is still a
//! valid security alert with a regulatory clock attached, and a producer's keying mistake must
//! cost a hop, not the alert. (Records that cannot be decoded are dead-lettered, as the router
//! does.) A re-routed alert reaches its incident's engine after the directly applied alerts read
//! with it — the same reordering the two-stage path has between input partitions — and every
//! re-route is counted (`klaxon_records_rerouted_total`) so a producer keying wrongly shows.
//!
//! Offsets: records read directly carry their offset into the engine (records re-delivered after
//! a crash are recognised by it); records read from the repartition topic (commands and re-routed
//! alerts) do not, since offsets of two topics cannot be compared, and rely on the alert-id and
//! command de-duplication instead.

use crate::decode::{decode_record, DecodeError, Expect};
use crate::settings::Config;

/// The key and partition a producer writes `record` (an alert, in any configured format) under
/// on a keyed alerts topic.
pub fn record_key(config: &Config, record: &[u8]) -> Result<([u8; 6], i32), DecodeError> {
    let s = &config.settings;
    let d = decode_record(
        record,
        Expect::Alert,
        s.input.max_record_bytes,
        &config.mappings,
    )?;
    let token =
        crate::engine::input_route_token(&d.input, &config.registry, &s.correlation.group_by);
    let key = routing_key(token);
    Ok((key, partition_for(&key, s.state.partitions)))
}

/// The routing key of a routing token: what the router writes as the repartition record's key,
/// and what a keyed producer must write on the alerts topic.
pub fn routing_key(token: u32) -> [u8; 6] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut k = [0u8; 6];
    for (i, b) in k.iter_mut().enumerate() {
        *b = HEX[((token >> (20 - 4 * i)) & 0xf) as usize];
    }
    k
}

/// The partition a keyed record belongs on: librdkafka's default (`consistent_random`)
/// partitioner for a non-empty key, `crc32(key) % partitions`.
pub fn partition_for(key: &[u8], partitions: i32) -> i32 {
    (crc32(key) % partitions.max(1) as u32) as i32
}

/// Whether a record read from the alerts topic may be applied directly: its key is the routing
/// key computed from its content and it sits on that key's partition.
pub fn is_direct(record_key: Option<&[u8]>, partition: i32, token: u32, partitions: i32) -> bool {
    let key = routing_key(token);
    record_key == Some(&key[..]) && partition == partition_for(&key, partitions)
}

/// CRC-32 (IEEE 802.3, reflected; zlib's and librdkafka's `rd_crc32`). Keys are six bytes, so a
/// table-free loop costs less than a table's cache lines.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_the_ieee_checksum() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn the_routing_key_is_the_repartition_key() {
        for token in [0u32, 0xabc, 0x12_3456, 0xff_ffff] {
            assert_eq!(
                routing_key(token).to_vec(),
                format!("{token:06x}").into_bytes()
            );
        }
    }

    #[test]
    fn only_the_computed_key_on_its_partition_is_direct() {
        let token = 0x0a_1b2c;
        let key = routing_key(token);
        let p = partition_for(&key, 6);
        assert!(is_direct(Some(&key), p, token, 6));
        assert!(
            !is_direct(Some(&key), (p + 1) % 6, token, 6),
            "wrong partition"
        );
        assert!(!is_direct(Some(b"0a1b2d"), p, token, 6), "wrong key");
        assert!(!is_direct(None, p, token, 6), "no key");
    }
}
