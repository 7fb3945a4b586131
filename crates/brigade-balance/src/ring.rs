//! The consistent-hash ring: each backend owns `100 × weight` points, placed by hashing its
//! address, so adding or removing one backend moves only the keys of that backend.
//!
//! FNV-1a with a final avalanche step rather than `DefaultHasher`: the placement must be the
//! same in every process and every release, so that two balancers (or one restarted) agree on
//! which replica owns a shop.

use std::sync::Arc;

use crate::backend::Backend;

/// Points per unit of weight: enough for an even spread of keys over a handful of backends.
const POINTS_PER_WEIGHT: u32 = 100;

/// A sorted ring of (hash, backend) points.
#[derive(Debug, Default)]
pub struct Ring {
    points: Vec<(u64, Arc<Backend>)>,
}

/// A stable 64-bit hash (FNV-1a followed by the splitmix64 finaliser).
pub fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

impl Ring {
    /// The ring of these backends (backups included; selection filters by tier).
    pub fn new(backends: &[Arc<Backend>]) -> Self {
        let mut points = Vec::new();
        for backend in backends {
            for i in 0..backend.weight() * POINTS_PER_WEIGHT {
                let point = hash(format!("{}#{i}", backend.label).as_bytes());
                points.push((point, Arc::clone(backend)));
            }
        }
        points.sort_unstable_by_key(|(h, _)| *h);
        Self { points }
    }

    /// The ring's nodes clockwise from the key's position (each point once, so a backend can
    /// appear several times; callers skip what they cannot use).
    pub fn walk(&self, key: &[u8]) -> impl Iterator<Item = &Arc<Backend>> {
        let start = self.points.partition_point(|(h, _)| *h < hash(key));
        self.points[start..]
            .iter()
            .chain(self.points[..start].iter())
            .map(|(_, b)| b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(n: u16) -> Vec<Arc<Backend>> {
        (0..n)
            .map(|i| {
                Arc::new(Backend::new(
                    "t",
                    format!("127.0.0.1:{}", 41000 + i).parse().unwrap(),
                    1,
                    false,
                ))
            })
            .collect()
    }

    #[test]
    fn removal_moves_only_the_removed_backends_keys() {
        let all = backends(4);
        let before = Ring::new(&all);
        let after = Ring::new(&all[..3]);
        let mut moved = 0;
        let mut owned_by_removed = 0;
        for key in 0..2000 {
            let key = format!("shop-{key}");
            let a = before.walk(key.as_bytes()).next().unwrap();
            let b = after.walk(key.as_bytes()).next().unwrap();
            if a.label == all[3].label {
                owned_by_removed += 1;
            } else {
                assert_eq!(a.label, b.label, "{key} moved");
            }
            if a.label != b.label {
                moved += 1;
            }
        }
        assert_eq!(moved, owned_by_removed);
        assert!((300..700).contains(&owned_by_removed), "{owned_by_removed}");
    }
}
