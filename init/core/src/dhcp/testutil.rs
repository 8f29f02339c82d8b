//! Test helpers shared by the DHCP modules' tests: server replies built by dhcproto, an
//! implementation independent of ours, and accessors for the client's actions.
//! Test-only: declared under `#[cfg(test)]` in `dhcp/mod.rs`, so it may unwrap and panic.

use std::net::Ipv4Addr;
use std::time::Duration;

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};

use super::{Action, Client, ClientConfig, Event, Lease};

pub(super) const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
pub(super) const ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
pub(super) const S1: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
pub(super) const S2: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);

pub(super) fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub(super) fn cfg() -> ClientConfig {
    ClientConfig {
        hostname: Some("node01".to_string()),
        ..ClientConfig::new(MAC, 42)
    }
}

pub(super) fn encode(msg: &Message) -> Vec<u8> {
    let mut buf = Vec::new();
    msg.encode(&mut Encoder::new(&mut buf)).unwrap();
    buf
}

pub(super) fn decode(bytes: &[u8]) -> Message {
    Message::decode(&mut Decoder::new(bytes)).unwrap()
}

/// A server reply built by dhcproto, an implementation independent of ours.
pub(super) fn reply(kind: MessageType, xid: u32, yiaddr: Ipv4Addr, server: Ipv4Addr) -> Message {
    let unspec = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(xid, unspec, yiaddr, unspec, unspec, &MAC);
    m.set_opcode(Opcode::BootReply)
        .set_flags(Flags::default().set_broadcast());
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    m.opts_mut().insert(DhcpOption::ServerIdentifier(server));
    m
}

pub(super) fn offer(c: &Client, server: Ipv4Addr) -> Vec<u8> {
    encode(&reply(MessageType::Offer, c.xid(), ADDR, server))
}

pub(super) fn ack(c: &Client, server: Ipv4Addr) -> Vec<u8> {
    encode(&reply(MessageType::Ack, c.xid(), ADDR, server))
}

pub(super) fn sent(actions: &[Action]) -> Vec<Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(p) => Some(decode(p)),
            _ => None,
        })
        .collect()
}

pub(super) fn only_send(actions: &[Action]) -> Message {
    let msgs = sent(actions);
    assert_eq!(msgs.len(), 1, "{actions:?}");
    msgs.into_iter().next().unwrap()
}

pub(super) fn armed(actions: &[Action]) -> Duration {
    let timers: Vec<Duration> = actions
        .iter()
        .filter_map(|a| match a {
            Action::ArmTimer(d) => Some(*d),
            _ => None,
        })
        .collect();
    assert_eq!(timers.len(), 1, "{actions:?}");
    timers[0]
}

pub(super) fn bound(actions: &[Action]) -> Lease {
    match actions.last() {
        Some(Action::Bound(lease)) => lease.clone(),
        other => panic!("expected Bound, got {other:?} in {actions:?}"),
    }
}

pub(super) fn ignored(actions: &[Action]) -> &str {
    match actions {
        [Action::Ignored(why)] => why,
        other => panic!("expected one Ignored, got {other:?}"),
    }
}

pub(super) fn selecting() -> Client {
    let mut c = Client::new(cfg());
    c.on(Event::Start, Duration::ZERO);
    c
}

pub(super) fn requesting() -> Client {
    let mut c = selecting();
    let o = offer(&c, S1);
    let actions = c.on(Event::Packet(&o), secs(1));
    assert_eq!(
        only_send(&actions).opts().msg_type(),
        Some(MessageType::Request)
    );
    c
}

/// Checks what RFC 2131 and this project require of every packet we send.
pub(super) fn assert_common(m: &Message, xid: u32) {
    assert_eq!(m.opcode(), Opcode::BootRequest);
    assert_eq!(m.xid(), xid);
    assert!(m.flags().broadcast(), "broadcast flag");
    assert_eq!(m.chaddr(), &MAC);
    assert_eq!(m.ciaddr(), Ipv4Addr::UNSPECIFIED);
    let mut client_id = vec![1];
    client_id.extend_from_slice(&MAC);
    assert_eq!(
        m.opts().get(OptionCode::ClientIdentifier),
        Some(&DhcpOption::ClientIdentifier(client_id))
    );
    assert_eq!(
        m.opts().get(OptionCode::MaxMessageSize),
        Some(&DhcpOption::MaxMessageSize(1472))
    );
    let want: Vec<OptionCode> = [1u8, 3, 6, 12, 15, 17, 26, 28, 42, 51, 54, 66, 67]
        .into_iter()
        .map(OptionCode::from)
        .collect();
    assert_eq!(
        m.opts().get(OptionCode::ParameterRequestList),
        Some(&DhcpOption::ParameterRequestList(want))
    );
    assert_eq!(
        m.opts().get(OptionCode::Hostname),
        Some(&DhcpOption::Hostname("node01".to_string()))
    );
}

/// A hand-made ACK: header fields from dhcproto, options from raw bytes.
pub(super) fn raw_ack(xid: u32, file: &[u8], options: &[u8]) -> Vec<u8> {
    let mut m = reply(MessageType::Ack, xid, ADDR, S1);
    m.opts_mut().clear();
    let mut p = encode(&m);
    p.truncate(240);
    p[108..108 + file.len()].copy_from_slice(file);
    p.extend_from_slice(&[53, 1, 5, 54, 4, 10, 0, 2, 2]);
    p.extend_from_slice(options);
    p.push(255);
    p
}
