//! Hashing: FNV-1a keys for de-duplication, correlation keys and incident ids (persisted, so the
//! definitions must not change), and the seeded `BuildHasher` of the engine's maps.

pub(super) const FNV128_OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
pub(super) const FNV128_PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

/// FNV-1a over `bytes`, from state `h`. A plain indexed loop, so that it also runs at compile
/// time (the namespaces' prefixes below) and compiles without iterator adapters: it runs over
/// every alert's id and key.
#[inline]
pub(super) const fn fnv128(mut h: u128, bytes: &[u8]) -> u128 {
    let mut i = 0;
    while i < bytes.len() {
        h = (h ^ bytes[i] as u128).wrapping_mul(FNV128_PRIME);
        i += 1;
    }
    h
}

/// The state after the `alert` namespace and its separator, computed once at compile time.
pub(super) const ALERT_NAMESPACE: u128 = fnv128(fnv128(FNV128_OFFSET, b"alert"), &[0xff]);

/// A 128-bit FNV-1a hash of the parts, namespaced: the dedup set keeps these instead of the
/// ids themselves (no allocation per alert; collisions are out of reach at 2^-64 odds). Each
/// part, the namespace first, is followed by a 0xff byte (which UTF-8 never contains).
pub(crate) fn dedup_key(namespace: &[u8], parts: &[&[u8]]) -> u128 {
    let mut h = fnv128(fnv128(FNV128_OFFSET, namespace), &[0xff]);
    for p in parts {
        h = fnv128(fnv128(h, p), &[0xff]);
    }
    h
}

/// `dedup_key(b"alert", &[id])`, from the namespace's precomputed state: it runs on every alert.
pub(crate) fn alert_dedup_key(id: &[u8]) -> u128 {
    fnv128(fnv128(ALERT_NAMESPACE, id), &[0xff])
}

/// The 128-bit hash a correlation key is indexed by (the maps never hold the strings).
pub(crate) fn key_hash(key: &str) -> u128 {
    fnv128(FNV128_OFFSET, key.as_bytes())
}

/// The state after an explicit key's `k:` prefix, computed once at compile time.
pub(super) const EXPLICIT_KEY_PREFIX: u128 = fnv128(FNV128_OFFSET, b"k:");

/// [`key_hash`] of `k:` followed by an explicit `incident_key`, without building the string.
pub(crate) fn explicit_key_hash(key: &str) -> u128 {
    fnv128(EXPLICIT_KEY_PREFIX, key.as_bytes())
}

/// The bucket hasher of the engine's maps, whose keys are already hashes (128-bit FNV of a
/// correlation key or an alert id) or an incident id. The keys come from alert content that an
/// attacker can shape, and FNV is public: with a public bucket hash, keys that fall into the same
/// buckets could be searched for offline and sent to turn every lookup into a long probe (hash
/// flooding). foldhash mixes in a seed drawn per map from the process's random source, at a
/// multiply or two per key: the core path costs 9,317 instructions per alert with it against
/// 9,309 with the hand-written seeded multiply it replaced (callgrind, `core_profile whole`).
/// Nothing iterates these maps in an order that reaches an output, so replays stay
/// byte-identical.
pub(crate) type SeededHash = foldhash::fast::RandomState;

/// FNV-1a: tiny, stable across platforms and releases (unlike `DefaultHasher`).
pub(crate) fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.iter().chain(std::iter::once(&0xffu8)) {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::super::dedup::DedupId;
    use super::*;
    use std::collections::HashSet;

    /// The hashes are persisted (dedup ids in the changelog) and shape incident ids, so the
    /// precomputed prefixes must give exactly the byte-by-byte FNV-1a of the old definition.
    #[test]
    fn hashes_with_precomputed_prefixes_equal_the_plain_definition() {
        let reference = |parts: &[&[u8]], separated: bool| {
            let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
            for p in parts {
                let sep: &[u8] = if separated { &[0xff] } else { &[] };
                for b in p.iter().chain(sep) {
                    h ^= u128::from(*b);
                    h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
                }
            }
            h
        };
        for id in ["", "a", "suricata-000123", "中文-ключ-🔑", &"x".repeat(300)] {
            let b = id.as_bytes();
            assert_eq!(alert_dedup_key(b), reference(&[b"alert", b], true));
            assert_eq!(dedup_key(b"alert", &[b]), reference(&[b"alert", b], true));
            assert_eq!(
                dedup_key(b"command", &[b, b"x"]),
                reference(&[b"command", b, b"x"], true)
            );
            assert_eq!(key_hash(id), reference(&[b], false));
            assert_eq!(explicit_key_hash(id), reference(&[b"k:", b], false));
        }
        // Pinned (computed independently), so a change to the reference cannot hide one here.
        assert_eq!(
            alert_dedup_key(b"a-1"),
            0xb571_9629_ad80_15c9_65fe_4bd2_07f8_df28_u128
        );
    }

    /// Keys an attacker searched for offline so that their 64-bit folds (what a hasher that
    /// trusts prehashed keys buckets on) share the low 20 bits: with a public bucket hash they
    /// would all fall into one bucket of any table up to a million slots. Seeded, they spread as
    /// random keys would.
    #[test]
    fn keys_crafted_to_share_their_low_bits_still_spread_over_the_buckets() {
        use std::hash::BuildHasher;
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let crafted: Vec<u128> = (0..4096)
            .map(|_| {
                let high = next();
                let folded = next() << 20 | 0xa_bcde;
                u128::from(high) << 64 | u128::from(high ^ folded)
            })
            .collect();
        let fold = |k: &u128| (*k as u64) ^ ((*k >> 64) as u64);
        assert!(
            crafted.iter().all(|k| fold(k) & 0xf_ffff == 0xa_bcde),
            "without a seed they would share one bucket"
        );
        let seeded = SeededHash::default();
        for keys in [
            crafted
                .iter()
                .map(|k| seeded.hash_one(DedupId::from(*k)))
                .collect::<Vec<_>>(),
            crafted.iter().map(|k| seeded.hash_one(k)).collect(),
        ] {
            let buckets: HashSet<u64> = keys.iter().map(|h| h & 0xfff).collect();
            // 4,096 random keys fill ~2,590 of 4,096 buckets.
            assert!(buckets.len() > 2_048, "{} buckets used", buckets.len());
        }
    }
}
