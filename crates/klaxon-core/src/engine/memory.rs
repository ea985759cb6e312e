//! Memory layout helpers: the interning pools shared operator and asset descriptions live in,
//! and exact-capacity pushes that keep a million open incidents small.

use super::*;

/// The one shared copy of `v` in `pool`, added if new.
pub(super) fn interned<T: std::hash::Hash + Eq>(pool: &mut HashSet<Arc<T>>, v: T) -> Arc<T> {
    if let Some(a) = pool.get(&v) {
        return a.clone();
    }
    let a = Arc::new(v);
    pool.insert(a.clone());
    a
}

/// Pushes without the usual doubling: an incident's lists are short and there are a million
/// incidents, so spare capacity (4 slots by default) would be most of their memory.
pub(super) fn push_exact<T>(v: &mut Vec<T>, x: T) {
    if v.len() == v.capacity() {
        v.reserve_exact(1);
    }
    v.push(x);
}

/// [`push_exact`] for a boxed slice (lists that rarely grow: an incident's reports, sources).
pub(super) fn push_boxed<T>(b: &mut Box<[T]>, x: T) {
    let mut v = std::mem::take(b).into_vec();
    push_exact(&mut v, x);
    *b = v.into_boxed_slice();
}

/// [`push_exact`] for the lists that grow with every alert: growing by exactly one would
/// reallocate on every alert, so a full list gains up to two spare slots (none on the first push,
/// which is all most incidents get, and never room beyond `limit`, the most it will hold).
pub(super) fn push_small<T>(v: &mut Vec<T>, x: T, limit: usize) {
    if v.len() == v.capacity() {
        let spare = v.len().min(2).min(limit.saturating_sub(v.len() + 1));
        v.reserve_exact(1 + spare);
    }
    v.push(x);
}

impl Engine {
    /// The shared copy of `op`.
    pub(super) fn intern(&mut self, op: OperatorInfo) -> Arc<OperatorInfo> {
        interned(&mut self.operators, op)
    }

    /// The shared copy of `asset`.
    pub(super) fn intern_asset(&mut self, asset: AssetInfo) -> Arc<AssetInfo> {
        interned(&mut self.assets, asset)
    }

    /// Drops interned operators and assets that no incident holds any more (now and then: assets
    /// such as host names come and go with their incidents).
    pub(super) fn sweep_interned(&mut self) {
        self.since_sweep += 1;
        if self.since_sweep < 65_536 {
            return;
        }
        self.since_sweep = 0;
        self.operators.retain(|a| Arc::strong_count(a) > 1);
        self.assets.retain(|a| Arc::strong_count(a) > 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_small_keeps_at_most_two_spare_slots_and_none_past_the_limit() {
        let mut v: Vec<u32> = Vec::new();
        push_small(&mut v, 0, 50);
        assert_eq!(v.capacity(), 1, "a one-alert incident holds exactly one");
        for i in 1..50 {
            push_small(&mut v, i, 50);
            assert!(v.capacity() - v.len() <= 2);
        }
        assert_eq!(v.capacity(), 50);
        let mut w: Vec<u32> = Vec::new();
        for i in 0..4 {
            push_small(&mut w, i, 4);
        }
        assert_eq!(w.capacity(), 4);
    }
}
