//! Weighted round-robin schedules, computed once per snapshot: a sequence
//! of member indices in which each member appears in proportion to its
//! weight, spread out (earliest-deadline-first, as stride scheduling).
//! A pick is then one atomic increment and one array read.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Longest schedule before weights are scaled down (keeps the schedule at
/// most 256 KiB; ratios below 1:65536 of the total are rounded to 1).
const MAX_LEN: u64 = 1 << 16;

/// The schedule for `weights` (all ≥ 1). Equal weights give `0..n`.
pub(crate) fn schedule(weights: &[u32]) -> Box<[u32]> {
    let n = weights.len();
    if n == 0 {
        return Box::new([]);
    }
    if weights.iter().all(|&w| w == weights[0]) {
        return (0..n as u32).collect();
    }
    let g = weights
        .iter()
        .fold(0u64, |g, &w| gcd(g, u64::from(w.max(1))));
    let mut w: Vec<u64> = weights.iter().map(|&x| u64::from(x.max(1)) / g).collect();
    let sum: u64 = w.iter().sum();
    let cap = MAX_LEN.max(n as u64);
    if sum > cap {
        for x in &mut w {
            *x = ((u128::from(*x) * u128::from(cap) / u128::from(sum)) as u64).max(1);
        }
    }
    let total: u64 = w.iter().sum();
    let mut heap: BinaryHeap<Next> = w
        .iter()
        .enumerate()
        .map(|(i, &wi)| Next {
            // Half a period in, so heavy members do not all start at once.
            deadline: 0.5 / wi as f64,
            index: i as u32,
        })
        .collect();
    let mut out = Vec::with_capacity(total as usize);
    while (out.len() as u64) < total {
        let mut next = heap.pop().expect("non-empty");
        out.push(next.index);
        next.deadline += 1.0 / w[next.index as usize] as f64;
        heap.push(next);
    }
    out.into_boxed_slice()
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

struct Next {
    deadline: f64,
    index: u32,
}

impl PartialEq for Next {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Next {}
impl PartialOrd for Next {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Next {
    /// Reversed: the heap pops the earliest deadline, then the lowest index.
    fn cmp(&self, o: &Self) -> Ordering {
        o.deadline
            .total_cmp(&self.deadline)
            .then(o.index.cmp(&self.index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(s: &[u32], n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &i in s {
            c[i as usize] += 1;
        }
        c
    }

    #[test]
    fn proportions_are_exact_and_spread() {
        let s = schedule(&[1, 2, 3]);
        assert_eq!(counts(&s, 3), [1, 2, 3]);
        let s = schedule(&[20, 80]);
        assert_eq!(s.len(), 5, "reduced by the gcd");
        assert_eq!(counts(&s, 2), [1, 4]);
        // Smooth: the heavy member never runs more than its share in a row.
        let s = schedule(&[1, 1, 8]);
        let longest = s
            .chunk_by(|a, b| a == b)
            .filter(|r| r[0] == 2)
            .map(<[u32]>::len)
            .max();
        assert!(longest <= Some(4), "{s:?}");
    }

    #[test]
    fn equal_weights_are_the_identity_and_huge_ones_are_capped() {
        assert_eq!(&*schedule(&[5, 5, 5]), &[0, 1, 2]);
        let s = schedule(&[1, u32::MAX]);
        assert!(s.len() as u64 <= MAX_LEN + 2);
        assert_eq!(counts(&s, 2)[0], 1, "a tiny weight still appears");
    }
}
