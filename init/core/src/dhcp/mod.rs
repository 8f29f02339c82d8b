//! The DHCPv4 client of a netbooting node, as a state machine with no I/O (RFC 2131), decoding
//! the RFC 2132 options that a diskless boot needs (address, routes, DNS, root path, ...).
//!
//! [`Client::on`] takes an [`Event`] (start, a received UDP payload, a timer expiry) and the
//! current time, and returns the [`Action`]s to perform: send this packet, arm this timer, lease
//! acquired, give up. The driver in `linuxrc::dhcp_driver` owns the sockets and the clock; this
//! module only decides. States follow RFC 2131 §4.4 (INIT → SELECTING → REQUESTING → BOUND);
//! retransmission follows §4.1 (exponential backoff, ±1 s of jitter). Only the acquisition half
//! is implemented: a boot client hands over to the real init long before T1, so there is no
//! RENEWING/REBINDING, and no ARP probe/DECLINE of the offered address.
//!
//! One job per file, as u-root's `pkg/dhclient` splits them: `client` is the state machine,
//! `wire` the message format (built and parsed by hand; its header says why not by dhcproto),
//! `lease` what an ACK grants, and `ipudp` finds the DHCP payload in a raw IPv4 packet. `wire`
//! and `lease` know nothing of the client. `jitter` is the random wait before the first DISCOVER.

mod client;
mod ipudp;
pub mod jitter;
mod lease;
#[cfg(test)]
mod testutil;
mod wire;

pub use client::{
    Action, Client, ClientConfig, DhcpError, Event, Progress, DEFAULT_FIRST_TIMEOUT,
    DEFAULT_MAX_TIMEOUT, DEFAULT_TOTAL, REQUEST_TRANSMISSIONS,
};
pub use ipudp::udp_payload;
pub use lease::{Lease, DEFAULT_NETMASK};
pub use wire::{CLIENT_PORT, MAX_MESSAGE_SIZE, PARAMETER_REQUEST_LIST, SERVER_PORT};

/// The whole exchange, from the first DISCOVER to the lease, against replies that dhcproto and
/// a real dnsmasq built, and against mutated packets.
#[cfg(test)]
// Test arithmetic on PRNG output, not input handling.
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::client::SplitMix64;
    use super::testutil::*;
    use super::*;
    use dhcproto::v4::{DhcpOption, MessageType, OptionCode};
    use std::net::Ipv4Addr;
    use std::time::Duration;

    #[test]
    fn happy_path_decodes_every_option_into_the_lease() {
        let mut c = Client::new(cfg());
        let xid = c.xid();

        let actions = c.on(Event::Start, secs(0));
        assert!(matches!(
            actions[0],
            Action::Progress(Progress::Discover { attempt: 1, .. })
        ));
        let discover = only_send(&actions);
        assert_common(&discover, xid);
        assert_eq!(discover.opts().msg_type(), Some(MessageType::Discover));
        assert!(!discover.opts().contains(OptionCode::RequestedIpAddress));
        assert!(!discover.opts().contains(OptionCode::ServerIdentifier));
        assert!(armed(&actions) > Duration::ZERO);

        let actions = c.on(Event::Packet(&offer(&c, S1)), secs(1));
        assert_eq!(
            actions[0],
            Action::Progress(Progress::Offer {
                address: ADDR,
                server: S1
            })
        );
        let request = only_send(&actions);
        assert_common(&request, xid);
        assert_eq!(request.opts().msg_type(), Some(MessageType::Request));
        assert_eq!(
            request.opts().get(OptionCode::RequestedIpAddress),
            Some(&DhcpOption::RequestedIpAddress(ADDR))
        );
        assert_eq!(
            request.opts().get(OptionCode::ServerIdentifier),
            Some(&DhcpOption::ServerIdentifier(S1))
        );
        assert_eq!(request.secs(), 1);

        let mut m = reply(MessageType::Ack, xid, ADDR, S1);
        m.set_siaddr(Ipv4Addr::new(10, 0, 2, 4));
        for o in [
            DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)),
            DhcpOption::BroadcastAddr(Ipv4Addr::new(10, 0, 2, 255)),
            DhcpOption::Router(vec![S1, S2]),
            DhcpOption::DomainNameServer(vec![Ipv4Addr::new(10, 0, 2, 3)]),
            DhcpOption::Hostname("node01".to_string()),
            DhcpOption::DomainName("cluster.example".to_string()),
            DhcpOption::RootPath("10.0.2.2:/srv/nfsroot".to_string()),
            DhcpOption::InterfaceMtu(9000),
            DhcpOption::NtpServers(vec![Ipv4Addr::new(10, 0, 2, 5), Ipv4Addr::new(10, 0, 2, 6)]),
            DhcpOption::TFTPServerName(b"tftp.cluster".to_vec()),
            DhcpOption::BootfileName(b"pxelinux.0".to_vec()),
            DhcpOption::AddressLeaseTime(86400),
        ] {
            m.opts_mut().insert(o);
        }
        let actions = c.on(Event::Packet(&encode(&m)), secs(2));
        assert_eq!(
            actions[0],
            Action::Progress(Progress::Ack {
                address: ADDR,
                server: S1
            })
        );
        let lease = bound(&actions);
        assert_eq!(
            lease,
            Lease {
                address: ADDR,
                netmask: Ipv4Addr::new(255, 255, 255, 0),
                broadcast: Some(Ipv4Addr::new(10, 0, 2, 255)),
                routers: vec![S1, S2],
                dns: vec![Ipv4Addr::new(10, 0, 2, 3)],
                hostname: Some("node01".to_string()),
                domain: Some("cluster.example".to_string()),
                root_path: Some("10.0.2.2:/srv/nfsroot".to_string()),
                mtu: Some(9000),
                ntp: vec![Ipv4Addr::new(10, 0, 2, 5), Ipv4Addr::new(10, 0, 2, 6)],
                server_id: S1,
                siaddr: Some(Ipv4Addr::new(10, 0, 2, 4)),
                tftp_server: Some("tftp.cluster".to_string()),
                bootfile: Some("pxelinux.0".to_string()),
                lease_secs: Some(86400),
            }
        );
        assert_eq!(lease.prefix_len(), 24);
        assert!(c.is_done());
        assert_eq!(c.deadline(), None);
        assert_eq!(
            lease.to_string(),
            "10.0.2.15/24 gw 10.0.2.2 server 10.0.2.2 root-path 10.0.2.2:/srv/nfsroot lease 86400s"
        );

        // Bound is final: a late duplicate ACK or a timer changes nothing.
        let again = ack(&c, S1);
        assert_eq!(
            ignored(&c.on(Event::Packet(&again), secs(3))),
            "already bound"
        );
        assert_eq!(c.on(Event::Timer, secs(100)), vec![]);
    }

    fn unhex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    /// Real replies of dnsmasq 2.90 (see testdata/dhcp/README.md), with the xid of the client
    /// under test written over the captured one.
    #[test]
    fn replays_real_dnsmasq_offer_and_ack() {
        let mac = [0x66, 0x91, 0x35, 0x9f, 0xb4, 0xdb];
        let server = Ipv4Addr::new(10, 77, 0, 1);
        let address = Ipv4Addr::new(10, 77, 0, 76);
        let mut c = Client::new(ClientConfig::new(mac, 9));
        c.on(Event::Start, Duration::ZERO);
        let with_our_xid = |text: &str, xid: u32| {
            let mut p = unhex(text);
            p[4..8].copy_from_slice(&xid.to_be_bytes());
            p
        };

        let offer = with_our_xid(
            include_str!("../../testdata/dhcp/dnsmasq-2.90-offer.hex"),
            c.xid(),
        );
        assert_eq!(offer.len(), 363);
        let actions = c.on(Event::Packet(&offer), secs(3));
        assert_eq!(
            actions[0],
            Action::Progress(Progress::Offer { address, server })
        );
        let request = only_send(&actions);
        assert_eq!(
            request.opts().get(OptionCode::RequestedIpAddress),
            Some(&DhcpOption::RequestedIpAddress(address))
        );

        let ack = with_our_xid(
            include_str!("../../testdata/dhcp/dnsmasq-2.90-ack.hex"),
            c.xid(),
        );
        let lease = bound(&c.on(Event::Packet(&ack), secs(3)));
        assert_eq!(
            lease,
            Lease {
                address,
                netmask: Ipv4Addr::new(255, 255, 255, 0),
                broadcast: Some(Ipv4Addr::new(10, 77, 0, 255)),
                routers: vec![server],
                dns: vec![server],
                hostname: Some("node01".to_string()),
                domain: Some("cluster.test".to_string()),
                root_path: Some("10.77.0.1:/srv/nfsroot".to_string()),
                mtu: Some(1400),
                ntp: vec![server],
                server_id: server,
                siaddr: Some(server),
                tftp_server: Some("bootsrv".to_string()),
                bootfile: Some("pxelinux.0".to_string()),
                lease_secs: Some(3600),
            }
        );
        // dhcproto reads the same packet the same way.
        let theirs = decode(&ack);
        assert_eq!(theirs.yiaddr(), lease.address);
        assert_eq!(
            theirs.opts().get(OptionCode::RootPath),
            Some(&DhcpOption::RootPath(lease.root_path.clone().unwrap()))
        );
    }

    /// Mutated valid packets and random bytes, in every state that parses packets: the client
    /// must never panic, and a lease can only come out with a real address.
    #[test]
    fn fuzz_mutated_and_random_packets_never_panic() {
        let mut rng = SplitMix64(0x5eed);
        let base_sel = selecting();
        let base_req = requesting();
        let mut full = reply(MessageType::Ack, base_req.xid(), ADDR, S1);
        for o in [
            DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)),
            DhcpOption::Router(vec![S1]),
            DhcpOption::RootPath("10.0.2.2:/srv/nfsroot".to_string()),
            DhcpOption::OptionOverload(3),
            DhcpOption::AddressLeaseTime(60),
        ] {
            full.opts_mut().insert(o);
        }
        let seeds = [offer(&base_sel, S1), encode(&full), ack(&base_req, S1)];
        let mut outcomes = [0u32; 3];
        for i in 0..30_000u32 {
            let mut p = seeds[i as usize % seeds.len()].clone();
            match rng.next_u64() % 6 {
                0 => {
                    let len = (rng.next_u64() % 700) as usize;
                    p = (0..len).map(|_| rng.next_u64() as u8).collect();
                }
                1 => p.truncate((rng.next_u64() % p.len() as u64) as usize),
                _ => {
                    // Mostly hit the options, where the parsing is.
                    for _ in 0..1 + rng.next_u64() % 4 {
                        let at = if rng.next_u64() % 4 == 0 {
                            rng.next_u64() as usize % p.len()
                        } else {
                            240 + rng.next_u64() as usize % (p.len() - 240)
                        };
                        p[at] = rng.next_u64() as u8;
                    }
                }
            }
            for base in [&base_sel, &base_req] {
                let mut c = base.clone();
                let actions = c.on(Event::Packet(&p), secs(1));
                match actions.last() {
                    Some(Action::Ignored(_)) => outcomes[0] += 1,
                    Some(Action::Bound(lease)) => {
                        assert!(!lease.address.is_unspecified());
                        outcomes[1] += 1;
                    }
                    Some(Action::ArmTimer(_)) => outcomes[2] += 1,
                    other => panic!("unexpected {other:?}"),
                }
            }
            assert!(udp_payload(&p, 68).is_none() || p.len() >= 28);
        }
        // The loop exercised rejections and acceptances alike.
        assert!(outcomes.iter().all(|&n| n > 100), "{outcomes:?}");
    }
}
