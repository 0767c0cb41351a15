//! The ring of ring-hash balancing (gRPC A42): built once per snapshot and
//! priority, looked up by binary search.
//!
//! Construction follows A42: weights are normalized, the ring is scaled so
//! the lightest endpoint gets at least its share of `min_ring_size`
//! entries (capped at `max_ring_size`), and each endpoint's entries hash
//! `"<address>_<n>"` with XXH64, seed 0.

use std::fmt::Write;

use xxhash_rust::xxh64::xxh64;

/// A sorted ring of (hash, endpoint index).
#[derive(Debug, Default)]
pub(crate) struct Ring {
    entries: Box<[(u64, u32)]>,
}

impl Ring {
    /// Builds the ring over `(key, weight, index)` triples (weights ≥ 1).
    pub(crate) fn build<'a>(
        endpoints: impl IntoIterator<Item = (&'a str, u64, u32)>,
        min_ring_size: u64,
        max_ring_size: u64,
    ) -> Ring {
        let endpoints: Vec<(&str, u64, u32)> = endpoints.into_iter().collect();
        let sum: u64 = endpoints.iter().map(|e| e.1).sum();
        if sum == 0 {
            return Ring::default();
        }
        let min_norm = endpoints
            .iter()
            .map(|e| e.1 as f64 / sum as f64)
            .fold(f64::INFINITY, f64::min);
        let scale = ((min_norm * min_ring_size as f64).ceil() / min_norm).min(max_ring_size as f64);
        let mut entries = Vec::with_capacity(scale.ceil() as usize);
        let mut key = String::new();
        let mut current = 0f64;
        let mut target = 0f64;
        for &(address, weight, index) in &endpoints {
            target += scale * weight as f64 / sum as f64;
            key.clear();
            key.push_str(address);
            key.push('_');
            let prefix = key.len();
            let mut count = 0u64;
            while current < target {
                key.truncate(prefix);
                let _ = write!(key, "{count}");
                entries.push((xxh64(key.as_bytes(), 0), index));
                count += 1;
                current += 1.0;
            }
        }
        entries.sort_unstable();
        Ring {
            entries: entries.into_boxed_slice(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The position of the first entry whose hash is ≥ `hash` (wrapping).
    #[inline]
    pub(crate) fn position(&self, hash: u64) -> usize {
        let i = self.entries.partition_point(|e| e.0 < hash);
        if i == self.entries.len() { 0 } else { i }
    }

    /// The endpoint index at ring position `i` (taken modulo the length).
    #[inline]
    pub(crate) fn at(&self, i: usize) -> u32 {
        self.entries[i % self.entries.len()].1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_and_shares_follow_a42() {
        let ring = Ring::build([("a:1", 1, 0), ("b:1", 3, 1)], 1024, 8 << 20);
        // min normalized weight 0.25: scale = ceil(0.25 × 1024) / 0.25 = 1024.
        assert_eq!(ring.len(), 1024);
        let b = (0..ring.len()).filter(|&i| ring.at(i) == 1).count();
        assert_eq!(b, 768);
        let capped = Ring::build([("a:1", 1, 0), ("b:1", 1_000_000, 1)], 1024, 4096);
        assert_eq!(capped.len(), 4096, "max_ring_size caps the ring");
    }

    #[test]
    fn hashes_are_xxh64_of_address_and_count() {
        let ring = Ring::build([("10.0.0.1:80", 1, 0)], 4, 4);
        let expected: Vec<u64> = {
            let mut v: Vec<u64> = (0..4)
                .map(|i| xxh64(format!("10.0.0.1:80_{i}").as_bytes(), 0))
                .collect();
            v.sort_unstable();
            v
        };
        let got: Vec<u64> = ring.entries.iter().map(|e| e.0).collect();
        assert_eq!(got, expected);
        assert_eq!(ring.position(0), 0);
        assert_eq!(ring.position(u64::MAX), 0, "wraps");
        assert_eq!(ring.position(expected[2]), 2);
    }
}
