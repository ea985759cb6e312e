//! Routing tokens: the 24-bit token a correlation key (or an input, before decoding it fully)
//! routes by, so every record of one incident reaches the same partition engine.

use super::*;

/// 24 bits that decide which partition owns a correlation key. Incident ids carry them, so a
/// command naming an incident is routed to the same partition as the alerts that opened it.
pub fn route_token(correlation_key: &str) -> u32 {
    ((fnv1a(&[correlation_key.as_bytes()]) >> 40) & 0xff_ffff) as u32
}

/// [`route_token`] of the correlation key `k:{key}`, without building the string (the router
/// computes one per record).
pub(super) fn explicit_route_token(key: &str) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in b"k:"
        .iter()
        .chain(key.as_bytes())
        .chain(std::iter::once(&0xffu8))
    {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    ((h >> 40) & 0xff_ffff) as u32
}

/// The routing token of an input, computed the way the engine would correlate it.
pub fn input_route_token(input: &Input, registry: &Registry, group_by: &[String]) -> u32 {
    match input {
        Input::Alert(a) => match a.incident_key.as_deref().filter(|k| !k.is_empty()) {
            // An explicit key is the correlation key: no registry lookups, no copies.
            Some(k) => explicit_route_token(k),
            None => {
                let (op, asset) = resolve_parties(registry, a);
                route_token(&correlate::correlation_key(a, &op, &asset, group_by))
            }
        },
        // The engine reads the address the same way (`Engine::find_incident`); one that does
        // not read goes to the first partition, whose engine rejects it.
        Input::Command(c) => Address::of(c.incident_id.as_deref()).map_or(0, |a| a.route_token()),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn an_explicit_key_routes_as_its_correlation_key(key in ".{0,40}") {
            prop_assert_eq!(
                super::explicit_route_token(&key),
                super::route_token(&format!("k:{key}"))
            );
        }
    }
}
