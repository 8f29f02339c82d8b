//! The state machine's transitions, timers and log lines, driven with replies built by
//! dhcproto.
//! Test-only: declared under `#[cfg(test)]` in `client.rs`, so it may unwrap and panic.

// Test arithmetic on PRNG output and timings, not input handling.
#![allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]

use std::net::Ipv4Addr;
use std::time::Duration;

use dhcproto::v4::{DhcpOption, MessageType, Opcode, OptionCode};

use super::*;
use crate::dhcp::testutil::*;
use crate::dhcp::DEFAULT_NETMASK;

#[test]
fn minimal_ack_gives_defaults() {
    let mut c = requesting();
    let mut m = reply(MessageType::Ack, c.xid(), ADDR, S1);
    m.opts_mut().remove(OptionCode::ServerIdentifier);
    let lease = bound(&c.on(Event::Packet(&encode(&m)), secs(2)));
    assert_eq!(lease.netmask, DEFAULT_NETMASK);
    assert_eq!(lease.prefix_len(), 24);
    // No option 54 in the ACK: the server we requested from.
    assert_eq!(lease.server_id, S1);
    assert_eq!(lease.siaddr, None);
    assert_eq!(
        (lease.broadcast, lease.mtu, lease.lease_secs),
        (None, None, None)
    );
    assert!(lease.routers.is_empty() && lease.dns.is_empty() && lease.ntp.is_empty());
    assert_eq!((lease.root_path, lease.bootfile), (None, None));
}

#[test]
fn parameter_request_list_asks_for_root_path() {
    let mut c = Client::new(ClientConfig::new(MAC, 7));
    let m = only_send(&c.on(Event::Start, Duration::ZERO));
    match m.opts().get(OptionCode::ParameterRequestList) {
        Some(DhcpOption::ParameterRequestList(codes)) => {
            assert!(codes.contains(&OptionCode::RootPath), "{codes:?}")
        }
        other => panic!("no parameter request list: {other:?}"),
    }
    // No host name configured: no option 12.
    assert!(!m.opts().contains(OptionCode::Hostname));
    assert_eq!(ignored(&c.on(Event::Start, secs(1))), "already started");
}

#[test]
fn first_offer_wins_and_the_other_server_is_ignored() {
    let mut c = selecting();
    let xid = c.xid();
    let request = only_send(&c.on(Event::Packet(&offer(&c, S1)), secs(1)));
    assert_eq!(
        request.opts().get(OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(S1))
    );
    let deadline = c.deadline();

    let why = ignored(&c.on(Event::Packet(&offer(&c, S2)), secs(1))).to_string();
    assert!(why.contains("OFFER from 10.0.2.3"), "{why}");
    let why = ignored(&c.on(Event::Packet(&offer(&c, S1)), secs(1))).to_string();
    assert!(why.contains("first OFFER wins"), "{why}");
    let why = ignored(&c.on(Event::Packet(&ack(&c, S2)), secs(1))).to_string();
    assert!(why.contains("ACK from 10.0.2.3"), "{why}");
    let nak = encode(&reply(MessageType::Nak, xid, Ipv4Addr::UNSPECIFIED, S2));
    let why = ignored(&c.on(Event::Packet(&nak), secs(1))).to_string();
    assert!(why.contains("NAK from 10.0.2.3"), "{why}");
    assert_eq!((c.xid(), c.deadline()), (xid, deadline));

    let lease = bound(&c.on(Event::Packet(&ack(&c, S1)), secs(2)));
    assert_eq!(lease.server_id, S1);
}

#[test]
fn nak_restarts_with_a_new_xid_and_repeated_naks_back_off() {
    let mut c = requesting();
    let old = c.xid();
    let mut nak = reply(MessageType::Nak, old, Ipv4Addr::UNSPECIFIED, S1);
    nak.opts_mut()
        .insert(DhcpOption::Message("address in use".to_string()));
    let actions = c.on(Event::Packet(&encode(&nak)), secs(2));
    assert_eq!(
        actions[0],
        Action::Progress(Progress::Nak {
            server: Some(S1),
            message: Some("address in use".to_string())
        })
    );
    let discover = only_send(&actions);
    assert_eq!(discover.opts().msg_type(), Some(MessageType::Discover));
    assert_ne!(c.xid(), old);
    assert_eq!(discover.xid(), c.xid());
    assert!(!c.is_done());

    // The old transaction is dead: its ACK no longer counts.
    let stale = encode(&reply(MessageType::Ack, old, ADDR, S1));
    assert!(ignored(&c.on(Event::Packet(&stale), secs(2))).contains("not ours"));

    // A second NAK: wait (timer only, no packet), then DISCOVER with yet another xid.
    c.on(Event::Packet(&offer(&c, S1)), secs(3));
    let second = c.xid();
    let nak = encode(&reply(MessageType::Nak, second, Ipv4Addr::UNSPECIFIED, S1));
    let actions = c.on(Event::Packet(&nak), secs(3));
    assert!(sent(&actions).is_empty(), "{actions:?}");
    let wake = armed(&actions);
    assert!(wake >= secs(6) && wake <= secs(8), "{wake:?}");
    assert!(ignored(&c.on(Event::Packet(&offer(&c, S1)), secs(4))).contains("NAK"));
    let discover = only_send(&c.on(Event::Timer, wake));
    assert_eq!(discover.opts().msg_type(), Some(MessageType::Discover));
    assert_ne!(c.xid(), second);

    // And the exchange can still complete.
    c.on(Event::Packet(&offer(&c, S1)), wake);
    let lease = bound(&c.on(Event::Packet(&ack(&c, S1)), wake));
    assert_eq!(lease.address, ADDR);
}

#[test]
fn nak_while_selecting_is_ignored_not_fatal() {
    let mut c = selecting();
    let nak = encode(&reply(MessageType::Nak, c.xid(), Ipv4Addr::UNSPECIFIED, S1));
    assert!(ignored(&c.on(Event::Packet(&nak), secs(1))).contains("NAK while selecting"));
}

/// Packets that must be dropped while SELECTING, each with a word of the expected reason.
#[test]
fn rejects_foreign_and_malformed_packets_while_selecting() {
    type Mutate = fn(&Client) -> Vec<u8>;
    let cases: &[(&str, Mutate, &str)] = &[
        (
            "wrong xid",
            |c| encode(&reply(MessageType::Offer, c.xid() ^ 1, ADDR, S1)),
            "not ours",
        ),
        (
            "wrong chaddr",
            |c| {
                let mut m = reply(MessageType::Offer, c.xid(), ADDR, S1);
                m.set_chaddr(&[0x52, 0x54, 0x00, 0x12, 0x34, 0x57]);
                encode(&m)
            },
            "chaddr",
        ),
        (
            "a BOOTREQUEST (another client's DISCOVER)",
            |c| {
                let mut m = reply(MessageType::Offer, c.xid(), ADDR, S1);
                m.set_opcode(Opcode::BootRequest);
                encode(&m)
            },
            "BOOTREPLY",
        ),
        ("empty", |_| Vec::new(), "truncated"),
        ("one byte", |c| offer(c, S1)[..1].to_vec(), "truncated"),
        ("header only", |c| offer(c, S1)[..100].to_vec(), "truncated"),
        (
            "no room for the cookie",
            |c| offer(c, S1)[..239].to_vec(),
            "truncated",
        ),
        (
            "no magic cookie",
            |c| {
                let mut p = offer(c, S1);
                p[236..240].copy_from_slice(&[0, 0, 0, 0]);
                p
            },
            "cookie",
        ),
        (
            "option overruns the packet",
            |c| {
                let mut p = offer(c, S1);
                let end = p.iter().rposition(|&b| b == 255).unwrap();
                p.truncate(end);
                p.extend_from_slice(&[3, 8, 10, 0, 2, 2]);
                p
            },
            "option 3 runs past",
        ),
        (
            "plain BOOTP reply",
            |c| {
                let mut m = reply(MessageType::Offer, c.xid(), ADDR, S1);
                m.opts_mut().remove(OptionCode::MessageType);
                encode(&m)
            },
            "option 53",
        ),
        ("ACK while selecting", |c| ack(c, S1), "ACK while selecting"),
        (
            "offer of 0.0.0.0",
            |c| {
                encode(&reply(
                    MessageType::Offer,
                    c.xid(),
                    Ipv4Addr::UNSPECIFIED,
                    S1,
                ))
            },
            "yiaddr 0.0.0.0",
        ),
        (
            "offer without a server id",
            |c| {
                let mut m = reply(MessageType::Offer, c.xid(), ADDR, S1);
                m.opts_mut().remove(OptionCode::ServerIdentifier);
                encode(&m)
            },
            "option 54",
        ),
    ];
    for (name, make, reason) in cases {
        let mut c = selecting();
        let (xid, deadline) = (c.xid(), c.deadline());
        let packet = make(&c);
        let actions = c.on(Event::Packet(&packet), secs(1));
        let why = ignored(&actions);
        assert!(
            why.contains(reason),
            "{name}: reason {why:?} lacks {reason:?}"
        );
        assert_eq!(
            (c.xid(), c.deadline()),
            (xid, deadline),
            "{name}: state changed"
        );
        // Nothing changed: the real OFFER is still taken.
        let request = only_send(&c.on(Event::Packet(&offer(&c, S1)), secs(1)));
        assert_eq!(
            request.opts().msg_type(),
            Some(MessageType::Request),
            "{name}"
        );
    }
}

#[test]
fn rejects_bad_acks_while_requesting() {
    type Mutate = fn(&Client) -> Vec<u8>;
    let cases: &[(&str, Mutate, &str)] = &[
        (
            "wrong xid",
            |c| encode(&reply(MessageType::Ack, c.xid().wrapping_add(1), ADDR, S1)),
            "not ours",
        ),
        (
            "wrong chaddr",
            |c| {
                let mut m = reply(MessageType::Ack, c.xid(), ADDR, S1);
                m.set_chaddr(&[1, 2, 3, 4, 5, 6]);
                encode(&m)
            },
            "chaddr",
        ),
        (
            "ack of 0.0.0.0",
            |c| encode(&reply(MessageType::Ack, c.xid(), Ipv4Addr::UNSPECIFIED, S1)),
            "yiaddr 0.0.0.0",
        ),
        ("truncated ack", |c| ack(c, S1)[..200].to_vec(), "truncated"),
    ];
    for (name, make, reason) in cases {
        let mut c = requesting();
        let (xid, deadline) = (c.xid(), c.deadline());
        let packet = make(&c);
        let why = ignored(&c.on(Event::Packet(&packet), secs(2))).to_string();
        assert!(
            why.contains(reason),
            "{name}: reason {why:?} lacks {reason:?}"
        );
        assert_eq!(
            (c.xid(), c.deadline()),
            (xid, deadline),
            "{name}: state changed"
        );
        bound(&c.on(Event::Packet(&ack(&c, S1)), secs(2)));
    }
}

#[test]
fn events_before_start_are_ignored() {
    let mut c = Client::new(cfg());
    let o = offer(&c, S1);
    assert_eq!(ignored(&c.on(Event::Packet(&o), secs(0))), "not started");
    assert_eq!(c.on(Event::Timer, secs(100)), vec![]);
}

/// RFC 2131 §4.1: 4, 8, 16, 32, 64, 64, ... seconds, each ±1 s.
#[test]
fn discover_retransmissions_back_off_exponentially_with_jitter() {
    let mut offsets = std::collections::BTreeSet::new();
    for seed in 0..64 {
        let mut c = Client::new(ClientConfig {
            total: secs(3600),
            ..ClientConfig::new(MAC, seed)
        });
        let xid = c.xid();
        let mut now = secs(1000); // any origin
        let mut deadline = armed(&c.on(Event::Start, now));
        for k in 0..10u32 {
            let base = secs((4u64 << k).min(64));
            let gap = deadline - now;
            assert!(
                gap >= base - secs(1) && gap <= base + secs(1),
                "seed {seed}, retransmission {k}: {gap:?} not within {base:?} ± 1 s"
            );
            offsets.insert(gap.as_millis() as i128 - base.as_millis() as i128);
            // An early wake-up does nothing.
            assert_eq!(
                c.on(Event::Timer, deadline - Duration::from_millis(1)),
                vec![]
            );
            now = deadline;
            let actions = c.on(Event::Timer, now);
            assert_eq!(
                actions[0],
                Action::Progress(Progress::Discover {
                    xid,
                    attempt: k + 2
                })
            );
            let m = only_send(&actions);
            assert_eq!(m.opts().msg_type(), Some(MessageType::Discover));
            // Same transaction, so a late OFFER to an earlier DISCOVER still counts.
            assert_eq!(m.xid(), xid);
            assert_eq!(u64::from(m.secs()), (now - secs(1000)).as_secs());
            deadline = armed(&actions);
        }
    }
    // The jitter is really random: many distinct offsets, on both sides of zero.
    assert!(offsets.len() > 100, "{} distinct offsets", offsets.len());
    assert!(offsets.first().unwrap() < &-500 && offsets.last().unwrap() > &500);
}

#[test]
fn the_seed_decides_xid_and_jitter() {
    let run = |seed| {
        let mut c = Client::new(ClientConfig::new(MAC, seed));
        let d = armed(&c.on(Event::Start, Duration::ZERO));
        (c.xid(), d)
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1).0, run(2).0);
}

#[test]
fn tiny_timeouts_stay_positive() {
    let mut c = Client::new(ClientConfig {
        first_timeout: Duration::from_millis(100),
        max_timeout: Duration::from_millis(400),
        total: secs(10),
        ..ClientConfig::new(MAC, 3)
    });
    let mut now = Duration::ZERO;
    let mut deadline = armed(&c.on(Event::Start, now));
    for k in 0..6 {
        let base = Duration::from_millis((100u64 << k).min(400));
        let gap = deadline - now;
        assert!(gap >= base / 2 && gap <= base * 3 / 2, "{k}: {gap:?}");
        now = deadline;
        deadline = armed(&c.on(Event::Timer, now));
    }
}

#[test]
fn gives_up_exactly_at_the_total_bound() {
    for total in [1, 3, 10, 30, 100, 300] {
        let total = secs(total);
        let start = secs(5);
        let mut c = Client::new(ClientConfig {
            total,
            ..ClientConfig::new(MAC, total.as_secs())
        });
        let mut actions = c.on(Event::Start, start);
        let mut sends = 0;
        let mut previous = start;
        // Bounded, so that a client that never gives up fails the test instead of hanging.
        for round in 0.. {
            assert!(round < 100, "{total:?}: no GiveUp after 100 timers");
            sends += sent(&actions).len() as u32;
            let deadline = armed(&actions);
            assert!(deadline <= start + total, "{total:?}: armed {deadline:?}");
            assert!(deadline > previous, "{total:?}: timer did not advance");
            previous = deadline;
            actions = c.on(Event::Timer, deadline);
            if let [Action::GiveUp(err)] = &actions[..] {
                assert_eq!(deadline, start + total, "gave up early");
                assert_eq!(
                    err,
                    &DhcpError::Timeout {
                        after: total,
                        attempts: sends,
                        offers: 0,
                        naks: 0
                    }
                );
                break;
            }
        }
        assert!(c.is_done());
        assert_eq!(c.on(Event::Timer, start + total * 2), vec![]);
        let o = offer(&c, S1);
        assert_eq!(
            ignored(&c.on(Event::Packet(&o), start + total)),
            "gave up already"
        );
    }
}

/// A reply handled at or after the overall deadline (the driver drained its sockets before
/// firing the due timer) ends the client exactly as the deadline timer would: no REQUEST,
/// no timer armed in the past, no lease. Found by the fuzz tier's dhcp target.
#[test]
fn a_reply_at_or_after_the_deadline_gives_up_like_the_timer() {
    let total = secs(60);
    let start = secs(5);
    let run = |late: Duration, packet: &dyn Fn(&Client) -> Vec<u8>, requesting: bool| {
        let mut c = Client::new(ClientConfig { total, ..cfg() });
        c.on(Event::Start, start);
        if requesting {
            c.on(Event::Packet(&offer(&c, S1)), start + secs(1));
        }
        let p = packet(&c);
        let mut timer_twin = c.clone();
        let actions = c.on(Event::Packet(&p), start + total + late);
        assert!(c.is_done());
        assert_eq!(c.deadline(), None);
        assert_eq!(
            actions,
            timer_twin.on(Event::Timer, start + total + late),
            "not the outcome of the deadline timer"
        );
        assert!(matches!(
            &actions[..],
            [Action::GiveUp(DhcpError::Timeout { .. })]
        ));
        actions
    };
    for late in [Duration::ZERO, Duration::from_millis(1), secs(3)] {
        // An OFFER while selecting, an ACK while requesting, a packet that is not ours.
        run(late, &|c| offer(c, S1), false);
        run(late, &|c| ack(c, S1), true);
        run(late, &|_| vec![0; 20], false);
    }
    // Just before the deadline the reply still counts.
    let mut c = Client::new(ClientConfig { total, ..cfg() });
    c.on(Event::Start, start);
    let just = start + total - Duration::from_millis(1);
    let actions = c.on(Event::Packet(&offer(&c, S1)), just);
    assert_eq!(sent(&actions).len(), 1);
    assert_eq!(armed(&actions), start + total);
    assert!(bound(&c.on(Event::Packet(&ack(&c, S1)), just)).address == ADDR);
}

#[test]
fn timeout_error_says_what_happened() {
    let e = DhcpError::Timeout {
        after: secs(60),
        attempts: 6,
        offers: 0,
        naks: 0,
    };
    assert_eq!(
        e.to_string(),
        "no DHCP lease within 60s: sent 6 DISCOVER/REQUEST, received 0 OFFER and 0 NAK \
         (is a DHCP server reachable on this link, and is the link up?)"
    );
}

#[test]
fn unanswered_request_falls_back_to_a_fresh_discover() {
    let mut c = requesting();
    let xid = c.xid();
    let mut now = secs(1);
    for attempt in 2..=REQUEST_TRANSMISSIONS {
        let deadline = c.deadline().unwrap();
        let base = secs(4 << (attempt - 2));
        assert!(deadline - now >= base - secs(1) && deadline - now <= base + secs(1));
        now = deadline;
        let actions = c.on(Event::Timer, now);
        assert_eq!(
            actions[0],
            Action::Progress(Progress::Request {
                address: ADDR,
                server: S1,
                attempt
            })
        );
        let m = only_send(&actions);
        assert_eq!(m.opts().msg_type(), Some(MessageType::Request));
        assert_eq!(m.xid(), xid);
    }
    now = c.deadline().unwrap();
    let actions = c.on(Event::Timer, now);
    assert_eq!(
        actions[0],
        Action::Progress(Progress::NoAck {
            server: S1,
            attempts: REQUEST_TRANSMISSIONS
        })
    );
    assert!(Progress::NoAck {
        server: S1,
        attempts: 3
    }
    .is_retransmission());
    let m = only_send(&actions);
    assert_eq!(m.opts().msg_type(), Some(MessageType::Discover));
    assert_ne!(m.xid(), xid);
    assert_eq!(m.xid(), c.xid());
    // Back to the start of the backoff.
    let gap = c.deadline().unwrap() - now;
    assert!(gap >= secs(3) && gap <= secs(5), "{gap:?}");
}

#[test]
fn progress_lines_read_well() {
    let cases = [
        (
            Progress::Discover {
                xid: 0xab,
                attempt: 1,
            },
            "DISCOVER (xid 0x000000ab)",
            false,
        ),
        (
            Progress::Discover {
                xid: 0xab,
                attempt: 2,
            },
            "no OFFER yet, DISCOVER again (attempt 2, xid 0x000000ab)",
            true,
        ),
        (
            Progress::Offer {
                address: ADDR,
                server: S1,
            },
            "OFFER 10.0.2.15 from 10.0.2.2",
            false,
        ),
        (
            Progress::Request {
                address: ADDR,
                server: S1,
                attempt: 1,
            },
            "REQUEST 10.0.2.15 from 10.0.2.2",
            false,
        ),
        (
            Progress::Ack {
                address: ADDR,
                server: S1,
            },
            "ACK 10.0.2.15 from 10.0.2.2",
            false,
        ),
        (
            Progress::Nak {
                server: Some(S1),
                message: Some("no".into()),
            },
            "NAK from 10.0.2.2 (\"no\"), starting over",
            false,
        ),
    ];
    for (p, line, warn) in cases {
        assert_eq!(p.to_string(), line);
        assert_eq!(p.is_retransmission(), warn, "{line}");
    }
}
