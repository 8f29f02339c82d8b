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
//! Replies are parsed by the small bounds-checked parser below rather than by `dhcproto`:
//! dhcproto 0.15's decoder trips `debug_assert!`s on short options 80/81/94 (a panic in any
//! debug build, and PID 1 must never panic), stops decoding at the first option it does not
//! like (a non-UTF-8 host name silently drops every option after it), and its `Message`
//! constructors call `rand::random()`, i.e. getrandom(2), which can block in early boot.
//! The tests use dhcproto as an independent implementation to build and check packets.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use thiserror::Error;

/// UDP port DHCP servers listen on.
pub const SERVER_PORT: u16 = 67;
/// UDP port DHCP clients listen on.
pub const CLIENT_PORT: u16 = 68;
/// What we announce in option 57: a 1500-byte Ethernet MTU minus IPv4 and UDP headers.
pub const MAX_MESSAGE_SIZE: u16 = 1472;
/// Option 55. 17 (root path) is essential: dnsmasq only sends options that the client asks for.
pub const PARAMETER_REQUEST_LIST: [u8; 13] = [1, 3, 6, 12, 15, 17, 26, 28, 42, 51, 54, 66, 67];
/// How many times a REQUEST is sent (1 + retransmissions) before starting over with a DISCOVER.
/// RFC 2131 leaves this open; a server that neither ACKs nor NAKs should not stall the boot.
pub const REQUEST_TRANSMISSIONS: u32 = 3;
/// Netmask assumed when the ACK carries no option 1 (not derived from the address class).
pub const DEFAULT_NETMASK: Ipv4Addr = Ipv4Addr::new(255, 255, 255, 0);

/// RFC 2131 §4.1: first retransmission timeout.
pub const DEFAULT_FIRST_TIMEOUT: Duration = Duration::from_secs(4);
/// RFC 2131 §4.1: the backoff stops doubling here.
pub const DEFAULT_MAX_TIMEOUT: Duration = Duration::from_secs(64);
/// Overall bound used by [`ClientConfig::new`]; callers normally set their own.
pub const DEFAULT_TOTAL: Duration = Duration::from_secs(120);

/// ±1 s (RFC 2131 §4.1), in milliseconds.
const JITTER_MS: u64 = 1000;
/// Minimum BOOTP message size (RFC 1542 §2.1): some relays drop anything shorter.
const MIN_MESSAGE_LEN: usize = 300;
const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
const BOOTREQUEST: u8 = 1;
const BOOTREPLY: u8 = 2;
const HTYPE_ETHERNET: u8 = 1;
/// The broadcast bit of the BOOTP `flags` field: the server must broadcast its replies, as we
/// cannot receive unicast before the address is configured (RFC 2131 §4.1).
const FLAG_BROADCAST: u16 = 0x8000;

// Fixed BOOTP header layout (RFC 2131 §2, figure 1).
const OFF_XID: usize = 4;
const OFF_YIADDR: usize = 16;
const OFF_SIADDR: usize = 20;
const OFF_CHADDR: usize = 28;
const OFF_SNAME: usize = 44;
const OFF_FILE: usize = 108;
const OFF_COOKIE: usize = 236;
const OFF_OPTIONS: usize = 240;
const SNAME_LEN: usize = 64;
const FILE_LEN: usize = 128;

/// RFC 2132 option codes used here.
mod opt {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS: u8 = 6;
    pub const HOSTNAME: u8 = 12;
    pub const DOMAIN: u8 = 15;
    pub const ROOT_PATH: u8 = 17;
    pub const MTU: u8 = 26;
    pub const BROADCAST: u8 = 28;
    pub const NTP: u8 = 42;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const OVERLOAD: u8 = 52;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMETER_LIST: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    pub const CLIENT_ID: u8 = 61;
    pub const TFTP_SERVER: u8 = 66;
    pub const BOOTFILE: u8 = 67;
    pub const END: u8 = 255;
}

/// DHCP message types (option 53, RFC 2132 §9.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MsgType {
    Discover,
    Offer,
    Request,
    Ack,
    Nak,
    Other(u8),
}

impl MsgType {
    fn from_code(code: u8) -> Self {
        match code {
            1 => Self::Discover,
            2 => Self::Offer,
            3 => Self::Request,
            5 => Self::Ack,
            6 => Self::Nak,
            n => Self::Other(n),
        }
    }

    fn code(self) -> u8 {
        match self {
            Self::Discover => 1,
            Self::Offer => 2,
            Self::Request => 3,
            Self::Ack => 5,
            Self::Nak => 6,
            Self::Other(n) => n,
        }
    }
}

impl fmt::Display for MsgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Discover => f.write_str("DISCOVER"),
            Self::Offer => f.write_str("OFFER"),
            Self::Request => f.write_str("REQUEST"),
            Self::Ack => f.write_str("ACK"),
            Self::Nak => f.write_str("NAK"),
            Self::Other(n) => write!(f, "message type {n}"),
        }
    }
}

/// An acquired lease: everything from the DHCPACK that the boot needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// `yiaddr` of the ACK.
    pub address: Ipv4Addr,
    /// Option 1. When the server sends none, [`DEFAULT_NETMASK`] (255.255.255.0) is assumed;
    /// the mask is deliberately not derived from the (obsolete) address class.
    pub netmask: Ipv4Addr,
    /// Option 28.
    pub broadcast: Option<Ipv4Addr>,
    /// Option 3, in the server's order of preference.
    pub routers: Vec<Ipv4Addr>,
    /// Option 6.
    pub dns: Vec<Ipv4Addr>,
    /// Option 12.
    pub hostname: Option<String>,
    /// Option 15.
    pub domain: Option<String>,
    /// Option 17, e.g. `10.0.2.2:/srv/nfsroot`.
    pub root_path: Option<String>,
    /// Option 26; values below the RFC 2132 minimum of 68 are dropped.
    pub mtu: Option<u16>,
    /// Option 42.
    pub ntp: Vec<Ipv4Addr>,
    /// Option 54 of the ACK, else the server identifier of the offer we requested.
    pub server_id: Ipv4Addr,
    /// BOOTP header `siaddr` ("next server"); `None` when 0.0.0.0.
    pub siaddr: Option<Ipv4Addr>,
    /// Option 66.
    pub tftp_server: Option<String>,
    /// Option 67, else the BOOTP header `file` field (unless option 52 overloads it).
    pub bootfile: Option<String>,
    /// Option 51, in seconds; 0xffffffff means infinite.
    pub lease_secs: Option<u32>,
}

impl Lease {
    /// CIDR prefix length of [`Lease::netmask`]: its leading one bits (a non-contiguous mask,
    /// which is invalid anyway, counts only up to its first zero bit).
    pub fn prefix_len(&self) -> u8 {
        // At most 32, so the fallback is never taken.
        u8::try_from(u32::from(self.netmask).leading_ones()).unwrap_or(32)
    }
}

impl fmt::Display for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len())?;
        if let Some(gw) = self.routers.first() {
            write!(f, " gw {gw}")?;
        }
        write!(f, " server {}", self.server_id)?;
        if let Some(root) = &self.root_path {
            write!(f, " root-path {root}")?;
        }
        if let Some(secs) = self.lease_secs {
            write!(f, " lease {secs}s")?;
        }
        Ok(())
    }
}

/// Per-interface client configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The interface's MAC: `chaddr` and, with type 1, the client identifier (option 61).
    pub mac: [u8; 6],
    /// Sent as option 12 when set and not empty.
    pub hostname: Option<String>,
    /// Seeds the transaction ids and the retransmission jitter; the driver reads it from
    /// /dev/urandom so that nodes booting at the same instant do not retransmit in lockstep.
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
    /// Begin acquisition: the first DISCOVER goes out at once (no RFC 2131 initial random
    /// delay: boot speed matters, and the jittered retransmissions already desynchronise).
    Start,
    /// A UDP payload received on port 68 (see [`udp_payload`]).
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
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
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
                let lease = reply.lease(server.unwrap_or(chosen.server));
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

    /// Builds a DISCOVER or (with `offer`) a SELECTING-state REQUEST (RFC 2131 §4.4.1, table 5).
    fn message(&mut self, kind: MsgType, now: Duration, offer: Option<Offer>) -> Vec<u8> {
        self.sent = self.sent.saturating_add(1);
        let secs = now
            .saturating_sub(self.started.unwrap_or_default())
            .as_secs();
        let secs = u16::try_from(secs).unwrap_or(u16::MAX);

        let mut m = Vec::with_capacity(MIN_MESSAGE_LEN + 64);
        m.extend_from_slice(&[BOOTREQUEST, HTYPE_ETHERNET, 6, 0]);
        m.extend_from_slice(&self.xid.to_be_bytes());
        m.extend_from_slice(&secs.to_be_bytes());
        m.extend_from_slice(&FLAG_BROADCAST.to_be_bytes());
        m.extend_from_slice(&[0; 16]); // ciaddr, yiaddr, siaddr, giaddr
        m.extend_from_slice(&self.cfg.mac);
        m.extend_from_slice(&[0; 10]); // rest of chaddr
        m.extend_from_slice(&[0; SNAME_LEN + FILE_LEN]);
        m.extend_from_slice(&MAGIC_COOKIE);

        put_option(&mut m, opt::MESSAGE_TYPE, &[kind.code()]);
        let mut client_id = [1u8; 7];
        for (dst, src) in client_id.iter_mut().skip(1).zip(self.cfg.mac) {
            *dst = src;
        }
        put_option(&mut m, opt::CLIENT_ID, &client_id);
        put_option(
            &mut m,
            opt::MAX_MESSAGE_SIZE,
            &MAX_MESSAGE_SIZE.to_be_bytes(),
        );
        put_option(&mut m, opt::PARAMETER_LIST, &PARAMETER_REQUEST_LIST);
        if let Some(name) = self.cfg.hostname.as_deref().filter(|n| !n.is_empty()) {
            put_option(&mut m, opt::HOSTNAME, name.as_bytes());
        }
        if let Some(offer) = offer {
            put_option(&mut m, opt::REQUESTED_IP, &offer.address.octets());
            put_option(&mut m, opt::SERVER_ID, &offer.server.octets());
        }
        m.push(opt::END);
        if m.len() < MIN_MESSAGE_LEN {
            m.resize(MIN_MESSAGE_LEN, opt::PAD);
        }
        m
    }
}

fn xid_from(r: u64) -> u32 {
    // The high half of splitmix64 output; truncation is the point.
    (r >> 32) as u32
}

/// Appends one option, split into 255-byte pieces as RFC 3396 allows when it is longer.
fn put_option(m: &mut Vec<u8>, code: u8, data: &[u8]) {
    for chunk in data.chunks(usize::from(u8::MAX)) {
        m.push(code);
        // chunks() yields at most 255 bytes.
        m.push(u8::try_from(chunk.len()).unwrap_or(u8::MAX));
        m.extend_from_slice(chunk);
    }
}

fn hex(bytes: &[u8]) -> String {
    let parts: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

/// Why a received packet could not be parsed as a DHCP message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
enum Malformed {
    #[error("truncated: {0} bytes, a DHCP message has at least 240")]
    Short(usize),
    #[error("no DHCP magic cookie")]
    NoCookie,
    #[error("option {code} runs past the end of the {area} field")]
    Overrun { code: u8, area: &'static str },
}

/// A parsed BOOTREPLY, borrowing from the packet.
#[derive(Debug)]
struct Reply<'a> {
    op: u8,
    xid: u32,
    yiaddr: Ipv4Addr,
    siaddr: Ipv4Addr,
    chaddr: &'a [u8],
    /// The `file` header field, unless option 52 says it holds options.
    file: Option<&'a [u8]>,
    /// Option data by code, with repeated codes concatenated (RFC 3396).
    options: BTreeMap<u8, Vec<u8>>,
}

impl<'a> Reply<'a> {
    fn parse(p: &'a [u8]) -> Result<Self, Malformed> {
        let short = || Malformed::Short(p.len());
        let op = *p.first().ok_or_else(short)?;
        let xid = be_u32(p, OFF_XID).ok_or_else(short)?;
        let yiaddr = Ipv4Addr::from(be_u32(p, OFF_YIADDR).ok_or_else(short)?);
        let siaddr = Ipv4Addr::from(be_u32(p, OFF_SIADDR).ok_or_else(short)?);
        let chaddr = p.get(OFF_CHADDR..OFF_SNAME).ok_or_else(short)?;
        let sname = p.get(OFF_SNAME..OFF_FILE).ok_or_else(short)?;
        let file = p.get(OFF_FILE..OFF_COOKIE).ok_or_else(short)?;
        let cookie = p.get(OFF_COOKIE..OFF_OPTIONS).ok_or_else(short)?;
        if cookie != MAGIC_COOKIE {
            return Err(Malformed::NoCookie);
        }
        let mut options = BTreeMap::new();
        walk_options(
            p.get(OFF_OPTIONS..).unwrap_or_default(),
            "options",
            &mut options,
        )?;
        // RFC 2131 §4.1 / RFC 3396: option 52 moves more options into `file` (1), `sname` (2)
        // or both (3), read in that order after the options field.
        let overload = options
            .get(&opt::OVERLOAD)
            .and_then(|v| v.first().copied())
            .unwrap_or(0);
        let mut extra = BTreeMap::new();
        if overload & 1 != 0 {
            walk_options(file, "file", &mut extra)?;
        }
        if overload & 2 != 0 {
            walk_options(sname, "sname", &mut extra)?;
        }
        for (code, data) in extra {
            if code != opt::OVERLOAD {
                options.entry(code).or_default().extend(data);
            }
        }
        Ok(Self {
            op,
            xid,
            yiaddr,
            siaddr,
            chaddr,
            file: (overload & 1 == 0).then_some(file),
            options,
        })
    }

    fn msg_type(&self) -> Option<MsgType> {
        match self.options.get(&opt::MESSAGE_TYPE)?.as_slice() {
            [code] => Some(MsgType::from_code(*code)),
            _ => None,
        }
    }

    /// A single address; any length other than 4 counts as absent.
    fn ipv4(&self, code: u8) -> Option<Ipv4Addr> {
        let bytes: [u8; 4] = self.options.get(&code)?.as_slice().try_into().ok()?;
        Some(Ipv4Addr::from(bytes))
    }

    /// A list of addresses; a length that is not a multiple of 4 counts as absent.
    fn ipv4s(&self, code: u8) -> Vec<Ipv4Addr> {
        let Some(data) = self.options.get(&code) else {
            return Vec::new();
        };
        if data.len() % 4 != 0 {
            return Vec::new();
        }
        data.chunks_exact(4)
            .filter_map(|c| <[u8; 4]>::try_from(c).ok())
            .map(Ipv4Addr::from)
            .collect()
    }

    fn u16(&self, code: u8) -> Option<u16> {
        let bytes: [u8; 2] = self.options.get(&code)?.as_slice().try_into().ok()?;
        Some(u16::from_be_bytes(bytes))
    }

    fn u32(&self, code: u8) -> Option<u32> {
        let bytes: [u8; 4] = self.options.get(&code)?.as_slice().try_into().ok()?;
        Some(u32::from_be_bytes(bytes))
    }

    fn string(&self, code: u8) -> Option<String> {
        text(self.options.get(&code)?)
    }

    fn lease(&self, server_id: Ipv4Addr) -> Lease {
        Lease {
            address: self.yiaddr,
            netmask: self.ipv4(opt::SUBNET_MASK).unwrap_or(DEFAULT_NETMASK),
            broadcast: self.ipv4(opt::BROADCAST),
            routers: self.ipv4s(opt::ROUTER),
            dns: self.ipv4s(opt::DNS),
            hostname: self.string(opt::HOSTNAME),
            domain: self.string(opt::DOMAIN),
            root_path: self.string(opt::ROOT_PATH),
            mtu: self.u16(opt::MTU).filter(|&m| m >= 68),
            ntp: self.ipv4s(opt::NTP),
            server_id,
            siaddr: Some(self.siaddr).filter(|a| !a.is_unspecified()),
            tftp_server: self.string(opt::TFTP_SERVER),
            bootfile: self
                .string(opt::BOOTFILE)
                .or_else(|| self.file.and_then(text)),
            lease_secs: self.u32(opt::LEASE_TIME),
        }
    }
}

/// Collects the options of one area (options field, or an overloaded `file`/`sname`).
fn walk_options(
    area: &[u8],
    name: &'static str,
    out: &mut BTreeMap<u8, Vec<u8>>,
) -> Result<(), Malformed> {
    let mut rest = area;
    while let Some((&code, tail)) = rest.split_first() {
        match code {
            opt::PAD => rest = tail,
            opt::END => break,
            _ => {
                let overrun = Malformed::Overrun { code, area: name };
                let (&len, tail) = tail.split_first().ok_or(overrun.clone())?;
                let len = usize::from(len);
                let data = tail.get(..len).ok_or(overrun.clone())?;
                out.entry(code).or_default().extend_from_slice(data);
                rest = tail.get(len..).ok_or(overrun)?;
            }
        }
    }
    Ok(())
}

/// A DHCP string: up to the first NUL (servers may NUL-terminate), lossily decoded so that one
/// bad byte is visible in the log instead of silently dropping the value; empty means absent.
fn text(bytes: &[u8]) -> Option<String> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let s = String::from_utf8_lossy(bytes.get(..end).unwrap_or_default());
    (!s.is_empty()).then(|| s.into_owned())
}

fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    let bytes: [u8; 2] = b.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_be_bytes(bytes))
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

/// The UDP payload of an IPv4 packet (as an AF_PACKET SOCK_DGRAM socket for ETH_P_IP delivers
/// it: no link-layer header) when it is UDP to `dst_port`; `None` for anything else (RFC 791,
/// RFC 768). Fragments are refused: a fragmented DHCP reply cannot be read from one frame.
/// Bytes past the IP total length (Ethernet minimum-frame padding) are cut off. Checksums are
/// not verified: with checksum offload (virtio-net, veth) a packet socket sees packets whose
/// UDP checksum is still partial, and the Ethernet CRC has already been checked.
pub fn udp_payload(ipv4_packet: &[u8], dst_port: u16) -> Option<&[u8]> {
    let p = ipv4_packet;
    let version_ihl = *p.first()?;
    if version_ihl >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(version_ihl & 0x0f) * 4;
    let total = usize::from(be_u16(p, 2)?);
    if ihl < 20 || total < ihl || total > p.len() {
        return None;
    }
    // Flags and fragment offset: MF set or a non-zero offset means a fragment.
    if be_u16(p, 6)? & 0x3fff != 0 {
        return None;
    }
    if *p.get(9)? != 17 {
        return None;
    }
    let udp = p.get(ihl..total)?;
    if be_u16(udp, 2)? != dst_port {
        return None;
    }
    let udp_len = usize::from(be_u16(udp, 4)?);
    if udp_len < 8 {
        return None;
    }
    udp.get(8..udp_len)
}

#[cfg(test)]
// Test arithmetic on PRNG output and timings, not input handling.
#[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
mod tests {
    use super::*;
    use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
    use dhcproto::{Decodable, Decoder, Encodable, Encoder};

    const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    const ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
    const S1: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
    const S2: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn cfg() -> ClientConfig {
        ClientConfig {
            hostname: Some("node01".to_string()),
            ..ClientConfig::new(MAC, 42)
        }
    }

    fn encode(msg: &Message) -> Vec<u8> {
        let mut buf = Vec::new();
        msg.encode(&mut Encoder::new(&mut buf)).unwrap();
        buf
    }

    fn decode(bytes: &[u8]) -> Message {
        Message::decode(&mut Decoder::new(bytes)).unwrap()
    }

    /// A server reply built by dhcproto, an implementation independent of ours.
    fn reply(kind: MessageType, xid: u32, yiaddr: Ipv4Addr, server: Ipv4Addr) -> Message {
        let unspec = Ipv4Addr::UNSPECIFIED;
        let mut m = Message::new_with_id(xid, unspec, yiaddr, unspec, unspec, &MAC);
        m.set_opcode(Opcode::BootReply)
            .set_flags(Flags::default().set_broadcast());
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        m.opts_mut().insert(DhcpOption::ServerIdentifier(server));
        m
    }

    fn offer(c: &Client, server: Ipv4Addr) -> Vec<u8> {
        encode(&reply(MessageType::Offer, c.xid(), ADDR, server))
    }

    fn ack(c: &Client, server: Ipv4Addr) -> Vec<u8> {
        encode(&reply(MessageType::Ack, c.xid(), ADDR, server))
    }

    fn sent(actions: &[Action]) -> Vec<Message> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(p) => Some(decode(p)),
                _ => None,
            })
            .collect()
    }

    fn only_send(actions: &[Action]) -> Message {
        let msgs = sent(actions);
        assert_eq!(msgs.len(), 1, "{actions:?}");
        msgs.into_iter().next().unwrap()
    }

    fn armed(actions: &[Action]) -> Duration {
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

    fn bound(actions: &[Action]) -> Lease {
        match actions.last() {
            Some(Action::Bound(lease)) => lease.clone(),
            other => panic!("expected Bound, got {other:?} in {actions:?}"),
        }
    }

    fn ignored(actions: &[Action]) -> &str {
        match actions {
            [Action::Ignored(why)] => why,
            other => panic!("expected one Ignored, got {other:?}"),
        }
    }

    fn selecting() -> Client {
        let mut c = Client::new(cfg());
        c.on(Event::Start, Duration::ZERO);
        c
    }

    fn requesting() -> Client {
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
    fn assert_common(m: &Message, xid: u32) {
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
    fn sent_packets_are_at_least_300_bytes_and_split_long_options() {
        let long = "n".repeat(300);
        let mut c = Client::new(ClientConfig {
            hostname: Some(long.clone()),
            ..ClientConfig::new(MAC, 7)
        });
        let actions = c.on(Event::Start, Duration::ZERO);
        let Some(Action::Send(raw)) = actions.iter().find(|a| matches!(a, Action::Send(_))) else {
            panic!("{actions:?}")
        };
        assert!(raw.len() >= 300, "{}", raw.len());
        // RFC 3396: dhcproto concatenates the two option-12 pieces back.
        assert_eq!(
            decode(raw).opts().get(OptionCode::Hostname),
            Some(&DhcpOption::Hostname(long))
        );

        let mut short = Client::new(ClientConfig::new(MAC, 7));
        for a in short.on(Event::Start, Duration::ZERO) {
            if let Action::Send(raw) = a {
                assert_eq!(raw.len(), 300);
            }
        }
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
    fn prefix_len_and_default_netmask() {
        let cases = [
            (None, 24),
            (Some([255, 255, 0, 0]), 16),
            (Some([255, 255, 255, 252]), 30),
            (Some([255, 255, 255, 255]), 32),
            (Some([0, 0, 0, 0]), 0),
            (Some([255, 0, 255, 0]), 8), // non-contiguous: leading ones only
        ];
        for (mask, want) in cases {
            let mut c = requesting();
            let mut m = reply(MessageType::Ack, c.xid(), ADDR, S1);
            if let Some(mask) = mask {
                m.opts_mut()
                    .insert(DhcpOption::SubnetMask(Ipv4Addr::from(mask)));
            }
            let lease = bound(&c.on(Event::Packet(&encode(&m)), secs(2)));
            assert_eq!(lease.prefix_len(), want, "{mask:?}");
        }
    }

    /// A hand-made ACK: header fields from dhcproto, options from raw bytes.
    fn raw_ack(c: &Client, file: &[u8], options: &[u8]) -> Vec<u8> {
        let mut m = reply(MessageType::Ack, c.xid(), ADDR, S1);
        m.opts_mut().clear();
        let mut p = encode(&m);
        p.truncate(240);
        p[108..108 + file.len()].copy_from_slice(file);
        p.extend_from_slice(&[53, 1, 5, 54, 4, 10, 0, 2, 2]);
        p.extend_from_slice(options);
        p.push(255);
        p
    }

    #[test]
    fn lease_option_edge_cases() {
        type Case = (
            &'static str,
            &'static [u8],
            &'static [u8],
            fn(&Lease) -> bool,
        );
        let cases: &[Case] = &[
            (
                "bootfile falls back to the file field",
                b"pxelinux.0\0",
                &[],
                |l| l.bootfile.as_deref() == Some("pxelinux.0"),
            ),
            (
                "option 67 beats the file field",
                b"old.0\0",
                &[67, 5, b'n', b'e', b'w', b'.', b'0'],
                |l| l.bootfile.as_deref() == Some("new.0"),
            ),
            (
                "RFC 3396: split option 17 is concatenated",
                b"",
                &[
                    17, 3, b'h', b':', b'/', 1, 4, 255, 255, 0, 0, 17, 2, b'r', b'o',
                ],
                |l| l.root_path.as_deref() == Some("h:/ro") && l.prefix_len() == 16,
            ),
            (
                "trailing NUL of a string is dropped",
                b"",
                &[17, 4, b'/', b'n', b'f', 0],
                |l| l.root_path.as_deref() == Some("/nf"),
            ),
            (
                "non-UTF-8 host name hides no later option",
                b"",
                &[12, 2, b'n', 0xff, 1, 4, 255, 255, 0, 0],
                |l| l.hostname.as_deref() == Some("n\u{fffd}") && l.prefix_len() == 16,
            ),
            (
                "netmask of the wrong length counts as absent",
                b"",
                &[1, 3, 255, 255, 0],
                |l| l.netmask == DEFAULT_NETMASK,
            ),
            (
                "router list of a bad length counts as absent",
                b"",
                &[3, 6, 10, 0, 2, 2, 10, 0],
                |l| l.routers.is_empty(),
            ),
            ("MTU below 68 is dropped", b"", &[26, 2, 0, 67], |l| {
                l.mtu.is_none()
            }),
            ("MTU of 68 is kept", b"", &[26, 2, 0, 68], |l| {
                l.mtu == Some(68)
            }),
            (
                "pads between options",
                b"",
                &[0, 0, 51, 4, 0, 0, 0, 60, 0],
                |l| l.lease_secs == Some(60),
            ),
            ("empty string is absent", b"", &[15, 0], |l| {
                l.domain.is_none()
            }),
            // Option 52 = 1: the file field holds options (here option 17), not a file name.
            (
                "option overload moves options into file",
                &[17, 4, b'/', b'o', b'v', b'l', 255],
                &[52, 1, 1],
                |l| l.root_path.as_deref() == Some("/ovl") && l.bootfile.is_none(),
            ),
        ];
        for (name, file, options, check) in cases {
            let mut c = requesting();
            let p = raw_ack(&c, file, options);
            let actions = c.on(Event::Packet(&p), secs(2));
            let lease = bound(&actions);
            assert!(check(&lease), "{name}: {lease:?}");
        }
    }

    #[test]
    fn overloaded_sname_and_overrun_inside_file() {
        // Option 52 = 3: options continue in file, then in sname (at offset 44).
        let mut c = requesting();
        let mut p = raw_ack(&c, &[17, 2, b'/', b'a', 255], &[52, 1, 3]);
        p[44..49].copy_from_slice(&[17, 2, b'/', b'b', 255]);
        assert_eq!(
            bound(&c.on(Event::Packet(&p), secs(2)))
                .root_path
                .as_deref(),
            Some("/a/b")
        );
        // An option that runs past the end of the file field is malformed.
        let mut c = requesting();
        let mut file = vec![0u8; 128];
        file[126] = 17;
        file[127] = 9;
        let p = raw_ack(&c, &file, &[52, 1, 1]);
        let why = ignored(&c.on(Event::Packet(&p), secs(2))).to_string();
        assert!(
            why.contains("option 17 runs past the end of the file field"),
            "{why}"
        );
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
            include_str!("../testdata/dhcp/dnsmasq-2.90-offer.hex"),
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
            include_str!("../testdata/dhcp/dnsmasq-2.90-ack.hex"),
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

    fn ip_udp(dst_port: u16, payload: &[u8]) -> Vec<u8> {
        let total = (20 + 8 + payload.len()) as u16;
        let mut p = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 2, 2, 255, 255, 255, 255,
        ];
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&67u16.to_be_bytes());
        p.extend_from_slice(&dst_port.to_be_bytes());
        p.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn udp_payload_table() {
        let good = ip_udp(68, b"dhcp!");
        type Case = (&'static str, fn(Vec<u8>) -> Vec<u8>, Option<&'static [u8]>);
        let cases: &[Case] = &[
            ("good", |p| p, Some(b"dhcp!")),
            (
                "ethernet padding after the packet",
                |mut p| {
                    p.extend_from_slice(&[0; 18]);
                    p
                },
                Some(b"dhcp!"),
            ),
            ("empty", |_| Vec::new(), None),
            ("short IP header", |p| p[..19].to_vec(), None),
            (
                "short UDP header",
                |mut p| {
                    p.truncate(25);
                    p[2..4].copy_from_slice(&25u16.to_be_bytes());
                    p
                },
                None,
            ),
            ("total length beyond the frame", |p| p[..30].to_vec(), None),
            (
                "not IPv4",
                |mut p| {
                    p[0] = 0x65;
                    p
                },
                None,
            ),
            (
                "IHL below 5",
                |mut p| {
                    p[0] = 0x44;
                    p
                },
                None,
            ),
            (
                "IHL beyond total length",
                |mut p| {
                    p[0] = 0x4f;
                    p
                },
                None,
            ),
            (
                "TCP",
                |mut p| {
                    p[9] = 6;
                    p
                },
                None,
            ),
            (
                "wrong port",
                |mut p| {
                    p[22..24].copy_from_slice(&67u16.to_be_bytes());
                    p
                },
                None,
            ),
            (
                "UDP length below 8",
                |mut p| {
                    p[24..26].copy_from_slice(&7u16.to_be_bytes());
                    p
                },
                None,
            ),
            (
                "UDP length beyond IP",
                |mut p| {
                    p[24..26].copy_from_slice(&100u16.to_be_bytes());
                    p
                },
                None,
            ),
            (
                "more fragments",
                |mut p| {
                    p[6] = 0x20;
                    p
                },
                None,
            ),
            (
                "fragment offset",
                |mut p| {
                    p[7] = 1;
                    p
                },
                None,
            ),
            (
                "don't fragment is fine",
                |mut p| {
                    p[6] = 0x40;
                    p
                },
                Some(b"dhcp!"),
            ),
            (
                "IP options (IHL 6)",
                |p| {
                    let mut q = p[..20].to_vec();
                    q[0] = 0x46;
                    q.extend_from_slice(&[1, 1, 1, 0]);
                    q.extend_from_slice(&p[20..]);
                    let total = q.len() as u16;
                    q[2..4].copy_from_slice(&total.to_be_bytes());
                    q
                },
                Some(b"dhcp!"),
            ),
        ];
        for (name, make, want) in cases {
            let p = make(good.clone());
            assert_eq!(udp_payload(&p, 68), *want, "{name}");
        }
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
}
