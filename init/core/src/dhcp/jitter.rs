//! The random delay before a node's first DHCPDISCOVER (`unionroot.jitter=`, bounded by
//! [`crate::cmdline::JITTER`]). RFC 2131 §4.4.1: "The client SHOULD wait a random time between
//! one and ten seconds to desynchronize the use of DHCP at startup." A rack powered on at once
//! otherwise broadcasts its DISCOVERs within the same few milliseconds, and then asks the NFS
//! heads for the same files at the same instant.
//!
//! The randomness comes from the kernel (getrandom(2), non-blocking, through linuxrc's `Sys`);
//! when the kernel has none to give, the MAC seeds it, which still spreads distinct nodes (the
//! same node then waits the same time on every boot).

use super::client::SplitMix64;
use crate::addr::Mac;
use std::fmt;
use std::time::Duration;

/// Where the random number came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entropy {
    /// getrandom(2).
    Kernel(u64),
    /// The kernel had none: the boot NIC's MAC seeds it.
    Mac(Mac),
}

/// The delay to wait, and why, for the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jitter {
    pub delay: Duration,
    pub bound: Duration,
    pub entropy: Entropy,
}

/// A delay uniform in `0..=bound` whole milliseconds (the bound is at most ten seconds, so the
/// modulus bias of a 64-bit number is below 10⁻¹⁵).
pub fn initial_delay(bound: Duration, entropy: Entropy) -> Jitter {
    let r = match entropy {
        Entropy::Kernel(r) => r,
        Entropy::Mac(m) => {
            let seed = m.0.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b));
            SplitMix64(seed).next_u64()
        }
    };
    let bound_ms = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX);
    let ms = match bound_ms.checked_add(1) {
        Some(n) => r % n,
        None => r,
    };
    Jitter {
        delay: Duration::from_millis(ms),
        bound,
        entropy,
    }
}

impl fmt::Display for Jitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "dhcp: waiting {} ms before DISCOVER (unionroot.jitter={}",
            self.delay.as_millis(),
            self.bound.as_millis()
        )?;
        match self.entropy {
            Entropy::Kernel(_) => write!(f, ", random from getrandom)"),
            Entropy::Mac(m) => write!(f, ", the kernel gave no random bytes: seeded from MAC {m})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_stays_within_the_bound_and_covers_it() {
        let bound = Duration::from_millis(500);
        let mut seen = [false; 501];
        let mut rng = SplitMix64(7);
        for _ in 0..20_000 {
            let j = initial_delay(bound, Entropy::Kernel(rng.next_u64()));
            assert!(j.delay <= bound, "{j:?}");
            seen[usize::try_from(j.delay.as_millis()).unwrap()] = true;
        }
        assert!(seen.iter().all(|s| *s), "every millisecond 0..=500 occurs");
        assert_eq!(
            initial_delay(Duration::ZERO, Entropy::Kernel(u64::MAX)).delay,
            Duration::ZERO,
            "0 turns it off"
        );
    }

    #[test]
    fn without_kernel_randomness_the_mac_spreads_nodes() {
        let bound = Duration::from_millis(500);
        let delays: std::collections::BTreeSet<Duration> = (0..=255u8)
            .map(|i| initial_delay(bound, Entropy::Mac(Mac([0x52, 0x54, 0, 0x77, 0, i]))).delay)
            .collect();
        assert!(delays.len() > 150, "{} distinct delays", delays.len());
        let m = Mac([0x52, 0x54, 0, 0x77, 0, 1]);
        assert_eq!(
            initial_delay(bound, Entropy::Mac(m)),
            initial_delay(bound, Entropy::Mac(m))
        );
    }

    #[test]
    fn the_console_line_says_how_long_and_why() {
        let j = initial_delay(Duration::from_millis(500), Entropy::Kernel(137));
        assert_eq!(
            j.to_string(),
            "dhcp: waiting 137 ms before DISCOVER (unionroot.jitter=500, random from getrandom)"
        );
        let m = Mac([0x52, 0x54, 0, 0x77, 0, 1]);
        let j = initial_delay(Duration::from_millis(500), Entropy::Mac(m));
        assert!(
            j.to_string()
                .ends_with("seeded from MAC 52:54:00:77:00:01)"),
            "{j}"
        );
    }
}
