//! The DHCPv4 client state machine of one interface (RFC 2131 §4.4: INIT → SELECTING →
//! REQUESTING → BOUND), with the retransmission schedule of §4.1. It takes events and returns
//! actions; the packets themselves are built and parsed in [`super::wire`].

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use thiserror::Error;

use super::lease::Lease;
use super::wire::{self, opt, MsgType, Reply, BOOTREPLY};

/// How many times a REQUEST is sent (1 + retransmissions) before starting over with a DISCOVER.
/// RFC 2131 leaves this open; a server that neither ACKs nor NAKs should not stall the boot.
pub const REQUEST_TRANSMISSIONS: u32 = 3;
/// RFC 2131 §4.1: first retransmission timeout.
pub const DEFAULT_FIRST_TIMEOUT: Duration = Duration::from_secs(4);
/// RFC 2131 §4.1: the backoff stops doubling here.
pub const DEFAULT_MAX_TIMEOUT: Duration = Duration::from_secs(64);
/// Overall bound used by [`ClientConfig::new`]; callers normally set their own.
pub const DEFAULT_TOTAL: Duration = Duration::from_secs(120);

/// ±1 s (RFC 2131 §4.1), in milliseconds.
const JITTER_MS: u64 = 1000;

/// Per-interface client configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The interface's MAC: `chaddr` and, with type 1, the client identifier (option 61).
    pub mac: [u8; 6],
    /// Sent as option 12 when set and not empty.
    pub hostname: Option<String>,
    /// Seeds the transaction ids and the retransmission jitter. It must differ between nodes,
    /// so that nodes booting at the same instant do not retransmit in lockstep, and obtaining it
    /// must not block early boot (the driver's `seed` says where it comes from).
    pub seed: u64,
    /// First retransmission timeout (RFC 2131: 4 s).
    pub first_timeout: Duration,
    /// The retransmission timeout stops doubling here (RFC 2131: 64 s).
    pub max_timeout: Duration,
    /// Overall bound, measured from [`Event::Start`]: at this instant the client gives up.
    pub total: Duration,
}

impl ClientConfig {
    /// RFC 2131 timeouts, [`DEFAULT_TOTAL`], no host name.
    pub fn new(mac: [u8; 6], seed: u64) -> Self {
        Self {
            mac,
            hostname: None,
            seed,
            first_timeout: DEFAULT_FIRST_TIMEOUT,
            max_timeout: DEFAULT_MAX_TIMEOUT,
            total: DEFAULT_TOTAL,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// Begin acquisition: the first DISCOVER goes out at once. RFC 2131's initial random delay
    /// is waited before this, once per node, by linuxrc ([`super::jitter`],
    /// `unionroot.jitter=`).
    Start,
    /// A UDP payload received on port 68 (see [`udp_payload`](super::udp_payload)).
    Packet(&'a [u8]),
    /// The timer last armed with [`Action::ArmTimer`] expired.
    Timer,
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this DHCP message from port 68 to 255.255.255.255:67.
    Send(Vec<u8>),
    /// (Re)arm the one timer at this absolute deadline, measured from the same origin as `now`.
    /// It replaces any earlier deadline.
    ArmTimer(Duration),
    /// A received packet was dropped, and why (log at debug). Nothing changed.
    Ignored(String),
    /// Protocol progress worth a log line naming the interface (see [`Progress`]).
    Progress(Progress),
    /// Lease acquired: the client is done.
    Bound(Lease),
    /// No lease within [`ClientConfig::total`]: the client is done.
    GiveUp(DhcpError),
}

/// One step of the exchange, for the log. [`Progress::is_retransmission`] says which ones
/// deserve a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// A DISCOVER is being sent; `attempt` counts from 1 within one transaction.
    Discover { xid: u32, attempt: u32 },
    /// The first valid OFFER, which we take.
    Offer { address: Ipv4Addr, server: Ipv4Addr },
    /// A REQUEST is being sent; `attempt` counts from 1.
    Request {
        address: Ipv4Addr,
        server: Ipv4Addr,
        attempt: u32,
    },
    /// The ACK that binds the lease.
    Ack { address: Ipv4Addr, server: Ipv4Addr },
    /// A NAK from the server we requested from: back to INIT.
    Nak {
        server: Option<Ipv4Addr>,
        message: Option<String>,
    },
    /// The chosen server answered none of our REQUESTs: back to INIT.
    NoAck { server: Ipv4Addr, attempts: u32 },
}

impl Progress {
    /// True for retransmissions and for giving up on a silent server.
    pub fn is_retransmission(&self) -> bool {
        match self {
            Self::Discover { attempt, .. } | Self::Request { attempt, .. } => *attempt > 1,
            Self::NoAck { .. } => true,
            Self::Offer { .. } | Self::Ack { .. } | Self::Nak { .. } => false,
        }
    }
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Discover { xid, attempt: 1 } => write!(f, "DISCOVER (xid {xid:#010x})"),
            Self::Discover { xid, attempt } => {
                write!(
                    f,
                    "no OFFER yet, DISCOVER again (attempt {attempt}, xid {xid:#010x})"
                )
            }
            Self::Offer { address, server } => write!(f, "OFFER {address} from {server}"),
            Self::Request {
                address,
                server,
                attempt: 1,
            } => write!(f, "REQUEST {address} from {server}"),
            Self::Request {
                address,
                server,
                attempt,
            } => write!(
                f,
                "no ACK yet, REQUEST {address} from {server} again (attempt {attempt})"
            ),
            Self::Ack { address, server } => write!(f, "ACK {address} from {server}"),
            Self::Nak { server, message } => {
                f.write_str("NAK")?;
                if let Some(server) = server {
                    write!(f, " from {server}")?;
                }
                if let Some(message) = message {
                    write!(f, " ({message:?})")?;
                }
                f.write_str(", starting over")
            }
            Self::NoAck { server, attempts } => write!(
                f,
                "no ACK from {server} after {attempts} REQUESTs, starting over with DISCOVER"
            ),
        }
    }
}

/// Why the client gave up.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DhcpError {
    #[error(
        "no DHCP lease within {}s: sent {attempts} DISCOVER/REQUEST, received {offers} OFFER and {naks} NAK{}",
        after.as_secs(),
        timeout_hint(*offers)
    )]
    Timeout {
        /// Time since [`Event::Start`]; equals [`ClientConfig::total`] when the timer is on time.
        after: Duration,
        /// Messages sent (DISCOVERs and REQUESTs, retransmissions included).
        attempts: u32,
        /// Valid OFFERs taken.
        offers: u32,
        /// NAKs that restarted the exchange.
        naks: u32,
    },
}

fn timeout_hint(offers: u32) -> &'static str {
    if offers == 0 {
        " (is a DHCP server reachable on this link, and is the link up?)"
    } else {
        ""
    }
}

/// splitmix64 (Steele, Lea, Flood 2014): tiny, seedable, good enough for xids and jitter.
#[derive(Debug, Clone)]
pub(super) struct SplitMix64(pub(super) u64);

impl SplitMix64 {
    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Offer {
    address: Ipv4Addr,
    server: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Not started yet.
    Init,
    /// After a repeated NAK: waiting (timer armed) before the next DISCOVER, so that a server
    /// that NAKs everything does not get a packet storm from a whole cluster.
    Holdoff,
    /// DISCOVER sent `attempt` times with the current xid.
    Selecting {
        attempt: u32,
    },
    /// REQUEST for `offer` sent `attempt` times.
    Requesting {
        offer: Offer,
        attempt: u32,
    },
    Bound,
    Failed,
}

/// The DHCPv4 client state machine of one interface. See the module documentation.
#[derive(Debug, Clone)]
pub struct Client {
    cfg: ClientConfig,
    rng: SplitMix64,
    state: State,
    xid: u32,
    /// `now` of [`Event::Start`].
    started: Option<Duration>,
    /// The deadline last armed, if any.
    deadline: Option<Duration>,
    sent: u32,
    offers: u32,
    naks: u32,
}

impl Client {
    pub fn new(cfg: ClientConfig) -> Self {
        let mut rng = SplitMix64(cfg.seed);
        let xid = xid_from(rng.next_u64());
        Self {
            cfg,
            rng,
            state: State::Init,
            xid,
            started: None,
            deadline: None,
            sent: 0,
            offers: 0,
            naks: 0,
        }
    }

    /// The current transaction id (a new one after a NAK or a REQUEST timeout).
    pub fn xid(&self) -> u32 {
        self.xid
    }

    /// The deadline last armed, if the client still waits for one.
    pub fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    /// True once the client has emitted [`Action::Bound`] or [`Action::GiveUp`].
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Bound | State::Failed)
    }

    /// Feeds one event; `now` is monotonic, from any fixed origin.
    pub fn on(&mut self, ev: Event<'_>, now: Duration) -> Vec<Action> {
        match ev {
            Event::Start => self.on_start(now),
            Event::Timer => self.on_timer(now),
            Event::Packet(bytes) => self.on_packet(bytes, now),
        }
    }

    fn on_start(&mut self, now: Duration) -> Vec<Action> {
        if self.state != State::Init {
            return vec![Action::Ignored("already started".to_string())];
        }
        self.started = Some(now);
        self.send_discover(now, 1)
    }

    fn on_timer(&mut self, now: Duration) -> Vec<Action> {
        // A timer that is not ours to fire yet (spurious or early wake-up) changes nothing.
        let Some(deadline) = self.deadline else {
            return Vec::new();
        };
        if now < deadline {
            return Vec::new();
        }
        self.deadline = None;
        if now >= self.end() {
            return self.give_up(now);
        }
        match self.state.clone() {
            State::Selecting { attempt } => self.send_discover(now, attempt.saturating_add(1)),
            State::Requesting { offer, attempt } if attempt < REQUEST_TRANSMISSIONS => {
                self.send_request(now, offer, attempt.saturating_add(1))
            }
            State::Requesting { offer, attempt } => {
                let mut actions = vec![Action::Progress(Progress::NoAck {
                    server: offer.server,
                    attempts: attempt,
                })];
                self.new_xid();
                actions.extend(self.send_discover(now, 1));
                actions
            }
            State::Holdoff => {
                self.new_xid();
                self.send_discover(now, 1)
            }
            State::Init | State::Bound | State::Failed => Vec::new(),
        }
    }

    fn on_packet(&mut self, bytes: &[u8], now: Duration) -> Vec<Action> {
        // At the overall deadline the armed timer is due too (it is never armed past it), and a
        // driver may drain its sockets before it fires due timers. The deadline wins: acting on
        // the reply would send past the bound and arm a timer that is already in the past.
        let waiting = matches!(
            self.state,
            State::Selecting { .. } | State::Requesting { .. } | State::Holdoff
        );
        if waiting && now >= self.end() {
            return self.give_up(now);
        }
        match self.handle_packet(bytes, now) {
            Ok(actions) => actions,
            Err(why) => vec![Action::Ignored(why)],
        }
    }

    /// `Err` is the reason the packet was ignored; nothing has changed then.
    fn handle_packet(&mut self, bytes: &[u8], now: Duration) -> Result<Vec<Action>, String> {
        let offer = match &self.state {
            State::Init => return Err("not started".to_string()),
            State::Holdoff => return Err("waiting before starting over after a NAK".to_string()),
            State::Bound => return Err("already bound".to_string()),
            State::Failed => return Err("gave up already".to_string()),
            State::Selecting { .. } => None,
            State::Requesting { offer, .. } => Some(*offer),
        };
        let reply = Reply::parse(bytes).map_err(|e| e.to_string())?;
        if reply.op != BOOTREPLY {
            return Err(format!("op {} is not BOOTREPLY", reply.op));
        }
        if reply.xid != self.xid {
            return Err(format!(
                "xid {:#010x} is not ours ({:#010x})",
                reply.xid, self.xid
            ));
        }
        if reply.chaddr.get(..6) != Some(&self.cfg.mac[..]) {
            return Err(format!("chaddr {} is not ours", hex(reply.chaddr)));
        }
        let kind = reply
            .msg_type()
            .ok_or("no DHCP message type (option 53): a plain BOOTP reply")?;
        let server = reply.ipv4(opt::SERVER_ID);
        match (offer, kind) {
            (None, MsgType::Offer) => {
                if reply.yiaddr.is_unspecified() {
                    return Err("OFFER without an address (yiaddr 0.0.0.0)".to_string());
                }
                let server = server
                    .filter(|s| !s.is_unspecified())
                    .ok_or("OFFER without a server identifier (option 54)")?;
                let offer = Offer {
                    address: reply.yiaddr,
                    server,
                };
                self.offers = self.offers.saturating_add(1);
                let mut actions = vec![Action::Progress(Progress::Offer {
                    address: offer.address,
                    server,
                })];
                actions.extend(self.send_request(now, offer, 1));
                Ok(actions)
            }
            (None, other) => Err(format!("{other} while selecting (waiting for an OFFER)")),
            (Some(chosen), kind) if server.is_some_and(|s| s != chosen.server) => Err(format!(
                "{kind} from {} while requesting {} from {}",
                server.map_or_else(String::new, |s| s.to_string()),
                chosen.address,
                chosen.server
            )),
            (Some(chosen), MsgType::Ack) => {
                if reply.yiaddr.is_unspecified() {
                    return Err("ACK without an address (yiaddr 0.0.0.0)".to_string());
                }
                let lease = Lease::from_reply(&reply, server.unwrap_or(chosen.server));
                self.state = State::Bound;
                self.deadline = None;
                Ok(vec![
                    Action::Progress(Progress::Ack {
                        address: lease.address,
                        server: lease.server_id,
                    }),
                    Action::Bound(lease),
                ])
            }
            (Some(_), MsgType::Nak) => {
                self.naks = self.naks.saturating_add(1);
                let mut actions = vec![Action::Progress(Progress::Nak {
                    server,
                    message: reply.string(opt::MESSAGE),
                })];
                if self.naks == 1 {
                    self.new_xid();
                    actions.extend(self.send_discover(now, 1));
                } else {
                    self.state = State::Holdoff;
                    let delay = self.jittered(self.cfg.first_timeout);
                    actions.push(self.arm(now, delay));
                }
                Ok(actions)
            }
            (Some(chosen), other) => Err(format!(
                "{other} while requesting {} from {}: the first OFFER wins",
                chosen.address, chosen.server
            )),
        }
    }

    fn send_discover(&mut self, now: Duration, attempt: u32) -> Vec<Action> {
        self.state = State::Selecting { attempt };
        let packet = self.message(MsgType::Discover, now, None);
        let delay = self.backoff(attempt);
        vec![
            Action::Progress(Progress::Discover {
                xid: self.xid,
                attempt,
            }),
            Action::Send(packet),
            self.arm(now, delay),
        ]
    }

    fn send_request(&mut self, now: Duration, offer: Offer, attempt: u32) -> Vec<Action> {
        self.state = State::Requesting { offer, attempt };
        let packet = self.message(MsgType::Request, now, Some(offer));
        let delay = self.backoff(attempt);
        vec![
            Action::Progress(Progress::Request {
                address: offer.address,
                server: offer.server,
                attempt,
            }),
            Action::Send(packet),
            self.arm(now, delay),
        ]
    }

    fn give_up(&mut self, now: Duration) -> Vec<Action> {
        self.state = State::Failed;
        self.deadline = None;
        vec![Action::GiveUp(DhcpError::Timeout {
            after: now.saturating_sub(self.started.unwrap_or_default()),
            attempts: self.sent,
            offers: self.offers,
            naks: self.naks,
        })]
    }

    fn end(&self) -> Duration {
        self.started
            .unwrap_or_default()
            .saturating_add(self.cfg.total)
    }

    /// Arms the timer `delay` after `now`, never past the overall deadline.
    fn arm(&mut self, now: Duration, delay: Duration) -> Action {
        let deadline = now.saturating_add(delay).min(self.end());
        self.deadline = Some(deadline);
        Action::ArmTimer(deadline)
    }

    /// RFC 2131 §4.1: the timeout after the `attempt`-th transmission is `first_timeout`
    /// doubled `attempt - 1` times, capped at `max_timeout`, then randomised by ±1 s.
    fn backoff(&mut self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        let base = self
            .cfg
            .first_timeout
            .saturating_mul(1u32 << doublings)
            .min(self.cfg.max_timeout);
        self.jittered(base)
    }

    /// `base` ± up to 1 s, uniformly in milliseconds. The jitter never exceeds half of `base`,
    /// so that tiny (test) timeouts stay positive.
    fn jittered(&mut self, base: Duration) -> Duration {
        let half = u64::try_from(base.as_millis() / 2).unwrap_or(u64::MAX);
        let span = JITTER_MS.min(half);
        if span == 0 {
            return base;
        }
        let offset = self.rng.next_u64() % (2 * span + 1);
        base.saturating_sub(Duration::from_millis(span))
            .saturating_add(Duration::from_millis(offset))
    }

    fn new_xid(&mut self) {
        let old = self.xid;
        self.xid = xid_from(self.rng.next_u64());
        if self.xid == old {
            self.xid = old.wrapping_add(1);
        }
    }

    /// A DISCOVER or (with `offer`) a REQUEST, counted for the give-up report.
    fn message(&mut self, kind: MsgType, now: Duration, offer: Option<Offer>) -> Vec<u8> {
        self.sent = self.sent.saturating_add(1);
        let secs = now
            .saturating_sub(self.started.unwrap_or_default())
            .as_secs();
        let secs = u16::try_from(secs).unwrap_or(u16::MAX);

        let requested = offer.map(|o| (o.address, o.server));
        wire::client_message(
            kind,
            self.xid,
            secs,
            self.cfg.mac,
            self.cfg.hostname.as_deref(),
            requested,
        )
    }
}

fn xid_from(r: u64) -> u32 {
    // The high half of splitmix64 output; truncation is the point.
    (r >> 32) as u32
}

fn hex(bytes: &[u8]) -> String {
    let parts: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

#[cfg(test)]
mod tests;
