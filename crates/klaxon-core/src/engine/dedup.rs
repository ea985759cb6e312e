//! The de-duplication set: alert ids and command keys seen within the dedup window, bounded,
//! expiring in arrival order, each also remembered by its incident for restores.

use super::*;

/// A [`dedup_key`] as the dedup set holds it: two `u64` halves (alignment 8), so an entry with
/// its expiry takes 24 bytes instead of the 32 a `u128` (alignment 16) pads it to, in both the
/// map and the expiry queue, for up to `state.max_dedup_ids` entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct DedupId([u64; 2]);

impl From<u128> for DedupId {
    fn from(k: u128) -> Self {
        DedupId([k as u64, (k >> 64) as u64])
    }
}

impl std::hash::Hash for DedupId {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u128(u128::from(self.0[0]) | u128::from(self.0[1]) << 64);
    }
}

impl Engine {
    /// Notes an alert id or command key as applied to `inc`.
    pub(super) fn remember(&mut self, inc: &mut Incident, key: u128, expires: Timestamp) {
        self.remember_id(key, expires);
        // Once full, the oldest goes: shift in place rather than remove and push.
        if inc.recent_ids.len() >= RECENT_IDS {
            inc.recent_ids.copy_within(1.., 0);
            if let Some(last) = inc.recent_ids.last_mut() {
                *last = key;
            }
        } else {
            push_small(&mut inc.recent_ids, key, RECENT_IDS);
        }
    }

    /// Adds an id to the dedup set. Past `max_dedup_ids`, the oldest ids are forgotten early:
    /// memory stays bounded whatever the alert rate (each id costs ~110 bytes, so a week of
    /// 1,000 alerts/s would need 65 GB), and the incident's own most recent ids still catch a
    /// re-sent alert (`handle_alert`).
    pub(super) fn remember_id(&mut self, key: u128, expires: Timestamp) {
        let key = DedupId::from(key);
        self.seen.insert(key, expires);
        self.seen_order.push_back((expires, key));
        while self.seen.len() > self.opts.max_dedup_ids {
            let Some((exp, id)) = self.seen_order.pop_front() else {
                break;
            };
            if self.seen.get(&id) == Some(&exp) {
                self.seen.remove(&id);
                self.dedup_evicted += 1;
            }
        }
    }

    /// How many ids were forgotten before their dedup window ended since the last call (the
    /// `klaxon_dedup_evicted_total` metric): a sign that `state.max_dedup_ids` is too small for
    /// the alert rate and `state.dedup_window`.
    pub fn take_dedup_evicted(&mut self) -> u64 {
        std::mem::take(&mut self.dedup_evicted)
    }

    pub(super) fn expire_dedup(&mut self) {
        while let Some((exp, _)) = self.seen_order.front() {
            if *exp > self.clock {
                break;
            }
            if let Some((exp, id)) = self.seen_order.pop_front() {
                if self.seen.get(&id) == Some(&exp) {
                    self.seen.remove(&id);
                }
            }
        }
    }
}
