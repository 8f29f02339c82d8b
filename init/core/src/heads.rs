//! Equivalent NFS heads (`a+b+c:` in a piece, see [`crate::nfs::NfsRoot`]): each node ranks
//! them by **rendezvous (highest-random-weight) hashing** on its MAC, mounts from the first and
//! fails over along that order. Thaler & Ravishankar, "Using name-based mappings to increase
//! hit rates" (IEEE/ACM ToN 6(1), 1998); RFC 2991 §4 lists it as "Highest Random Weight" among
//! the ways to pick one of several equal next hops.
//!
//! Why rendezvous rather than `hash(mac) % n`: adding a head moves only the nodes that now rank
//! the new head first (about 1/(n+1) of them), and removing or losing one moves only that
//! head's nodes, each to its own next head, so a dead head's load spreads over all the others
//! instead of landing on one neighbour. It needs no state, no coordination and no table.
//!
//! The weight of head `h` for MAC `m` is `fmix64(fnv1a64(m[0..6] ++ h.octets()))`: FNV-1a
//! (Fowler/Noll/Vo, IETF draft-eastlake-fnv) over the 10 bytes, then MurmurHash3's 64-bit
//! finaliser (Appleby, public domain) so that MACs differing in one bit (consecutive NICs) get
//! unrelated weights. Both are fixed, so a node ranks its heads the same way on every boot, on
//! every architecture and in every release: the test `weights_are_pinned` holds that.

use crate::addr::Mac;
use std::fmt;
use std::net::Ipv4Addr;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// MurmurHash3's `fmix64`: every input bit affects every output bit.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// The rendezvous weight of `head` for the node with `mac`.
pub fn weight(mac: Mac, head: Ipv4Addr) -> u64 {
    let h = mac
        .0
        .iter()
        .chain(head.octets().iter())
        .fold(FNV_OFFSET, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME)
        });
    fmix64(h)
}

/// The heads in this node's order: highest weight first (ties, which need a 64-bit collision,
/// by address so that the order stays total).
pub fn rank(heads: &[Ipv4Addr], mac: Mac) -> Vec<Ipv4Addr> {
    let mut v = heads.to_vec();
    v.sort_by(|a, b| weight(mac, *b).cmp(&weight(mac, *a)).then(a.cmp(b)));
    v
}

/// One piece's ranking, for the console line that says which head was chosen and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranking {
    /// The heads as written.
    pub heads: Vec<Ipv4Addr>,
    /// The order this node tries them in.
    pub order: Vec<Ipv4Addr>,
    /// The MAC they were ranked for; `None` when no NIC is known (then: as written).
    pub mac: Option<Mac>,
}

impl Ranking {
    pub fn new(heads: &[Ipv4Addr], mac: Option<Mac>) -> Ranking {
        Ranking {
            heads: heads.to_vec(),
            order: mac.map_or_else(|| heads.to_vec(), |m| rank(heads, m)),
            mac,
        }
    }
}

fn joined(v: &[Ipv4Addr], sep: &str) -> String {
    v.iter()
        .map(Ipv4Addr::to_string)
        .collect::<Vec<_>>()
        .join(sep)
}

impl fmt::Display for Ranking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "heads {}: ", joined(&self.heads, "+"))?;
        match self.mac {
            Some(m) => write!(
                f,
                "ranked {} for MAC {m} (rendezvous hash: highest weight first, the next ones are the failover order)",
                joined(&self.order, ", ")
            ),
            None => write!(
                f,
                "no NIC known to rank them by (ip=off): trying {} as written",
                joined(&self.order, ", ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn heads(n: u8) -> Vec<Ipv4Addr> {
        (1..=n).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect()
    }

    /// Many MACs, as a DHCP range of one vendor prefix would give them.
    fn macs() -> impl Iterator<Item = Mac> {
        (0u32..20_000).map(|i| {
            let b = i.to_be_bytes();
            Mac([0x52, 0x54, 0x00, b[1], b[2], b[3]])
        })
    }

    #[test]
    fn weights_are_pinned() {
        // Changing the hash would move every node of every cluster at the next reboot: these
        // values are the contract (checked against an independent Python implementation).
        let m = Mac([0x52, 0x54, 0x00, 0x77, 0x00, 0x01]);
        assert_eq!(
            format!("{:016x}", weight(m, ip("10.0.0.1"))),
            "a6f5a32c0826c642"
        );
        assert_eq!(
            format!("{:016x}", weight(m, ip("10.0.0.2"))),
            "bea0b25776fd86cf"
        );
        assert_eq!(
            format!("{:016x}", weight(Mac([0; 6]), Ipv4Addr::UNSPECIFIED)),
            "074c037c01afed67"
        );
    }

    #[test]
    fn the_order_is_stable_and_does_not_depend_on_how_heads_are_written() {
        let h = heads(5);
        let mut reversed = h.clone();
        reversed.reverse();
        for m in macs().take(500) {
            let r = rank(&h, m);
            assert_eq!(r, rank(&h, m));
            assert_eq!(r, rank(&reversed, m), "{m}");
            let mut sorted = r.clone();
            sorted.sort();
            assert_eq!(sorted, h, "a permutation of the heads");
        }
    }

    #[test]
    fn heads_share_the_nodes_evenly() {
        let h = heads(3);
        let mut count = [0usize; 3];
        for m in macs() {
            let first = rank(&h, m)[0];
            count[usize::from(first.octets()[3] - 1)] += 1;
        }
        let n = macs().count();
        for c in count {
            let share = c as f64 / n as f64;
            assert!((share - 1.0 / 3.0).abs() < 0.02, "{count:?}");
        }
    }

    #[test]
    fn adding_a_head_moves_about_one_in_n_nodes_and_only_to_it() {
        for n in [1u8, 2, 3, 7] {
            let before = heads(n);
            let after = heads(n + 1);
            let new = after[usize::from(n)];
            let mut moved = 0usize;
            for m in macs() {
                let (a, b) = (rank(&before, m)[0], rank(&after, m)[0]);
                if a != b {
                    assert_eq!(b, new, "{m}: moved between old heads");
                    moved += 1;
                }
                // The rest of the order is the old order with the new head inserted.
                let without: Vec<_> = rank(&after, m).into_iter().filter(|x| *x != new).collect();
                assert_eq!(without, rank(&before, m), "{m}");
            }
            let share = moved as f64 / macs().count() as f64;
            let want = 1.0 / f64::from(n + 1);
            assert!((share - want).abs() < 0.02, "{n} -> {}: {share}", n + 1);
        }
    }

    #[test]
    fn a_lost_heads_nodes_spread_over_all_the_others() {
        let h = heads(4);
        let dead = h[1];
        let mut next = [0usize; 4];
        for m in macs() {
            let r = rank(&h, m);
            if r[0] == dead {
                next[usize::from(r[1].octets()[3] - 1)] += 1;
            }
        }
        let total: usize = next.iter().sum();
        assert_eq!(next[1], 0);
        for (i, c) in next.iter().enumerate().filter(|(i, _)| *i != 1) {
            let share = *c as f64 / total as f64;
            assert!((share - 1.0 / 3.0).abs() < 0.04, "head {i}: {next:?}");
        }
    }

    #[test]
    fn the_console_line_says_the_order_and_why() {
        let m = Mac([0x52, 0x54, 0x00, 0x77, 0x00, 0x01]);
        let h = [ip("10.0.0.1"), ip("10.0.0.2")];
        let r = Ranking::new(&h, Some(m));
        assert_eq!(r.order, rank(&h, m));
        let line = r.to_string();
        assert!(
            line.starts_with("heads 10.0.0.1+10.0.0.2: ranked "),
            "{line}"
        );
        assert!(
            line.contains("for MAC 52:54:00:77:00:01 (rendezvous"),
            "{line}"
        );
        let r = Ranking::new(&h, None);
        assert_eq!(r.order, h);
        assert!(r.to_string().contains("as written"), "{r}");
    }
}
