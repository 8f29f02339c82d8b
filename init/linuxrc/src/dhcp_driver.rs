//! The I/O shell around [`unionroot_core::dhcp::Client`]: sockets, clock and poll(2) loop.
//! Every protocol decision (RFC 2131/2132) is made in the core; this file only moves bytes.
//!
//! Per interface, packets go out through a UDP socket bound to 0.0.0.0:68 and pinned to the
//! interface with SO_BINDTODEVICE (socket(7)): with an output device the kernel routes the
//! limited broadcast 255.255.255.255 even though the interface has no address yet, and sends it
//! from 0.0.0.0. Replies come in through one AF_PACKET SOCK_DGRAM socket for ETH_P_IP
//! (packet(7)), which sees them whether the server broadcasts or unicasts to the address it is
//! offering, which the IP layer would drop as not ours. The packet socket is not bound to an
//! ifindex (nix 0.32 offers no safe way to build a `sockaddr_ll`); the `sll_ifindex` of each
//! frame says which client it is for, so one socket serves every interface.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::net::Nic;
use log::{debug, info, warn};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    bind, recv, recvfrom, sendto, setsockopt, socket, sockopt, AddressFamily, LinkAddr, MsgFlags,
    SockFlag, SockProtocol, SockType, SockaddrIn,
};
use thiserror::Error;
use unionroot_core::dhcp::{
    udp_payload, Action, Client, ClientConfig, Event, Lease, CLIENT_PORT, SERVER_PORT,
};

/// `sll_pkttype` of frames we sent ourselves (linux/if_packet.h).
const PACKET_OUTGOING: u8 = 4;
/// Larger than any DHCP reply we accept (we announce 1472 bytes in option 57).
const RECV_BUF: usize = 2048;

/// Timeouts and host name shared by all interfaces (see [`ClientConfig`]).
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// Sent as option 12.
    pub hostname: Option<String>,
    /// First retransmission timeout (RFC 2131: 4 s).
    pub first_timeout: Duration,
    /// Cap of the doubling retransmission timeout (RFC 2131: 64 s).
    pub max_timeout: Duration,
    /// Overall bound for the whole race.
    pub total: Duration,
    /// How long an interface without carrier may take to get one and join the race.
    pub carrier_timeout: Duration,
    /// Whether an interface has carrier now (sysfs in linuxrc; a table in tests).
    pub has_carrier: fn(&str) -> bool,
}

/// How one interface failed to get a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicFailure {
    pub iface: String,
    /// Why: the DHCP client's error, or that the link never came up.
    pub reason: String,
    /// The last sendto(2) error on this interface, if any: often the real reason.
    pub last_send_error: Option<Errno>,
}

#[derive(Debug, Error)]
pub enum DriverError {
    #[error("dhcp: no network interface to run DHCP on")]
    NoInterfaces,
    #[error("dhcp {iface}: socket({kind}): {errno}")]
    Socket {
        iface: String,
        kind: &'static str,
        errno: Errno,
    },
    #[error("dhcp {iface}: setsockopt {opt}: {errno}")]
    SetSockOpt {
        iface: String,
        opt: &'static str,
        errno: Errno,
    },
    #[error("dhcp {iface}: bind 0.0.0.0:68: {errno} (is another DHCP client running?)")]
    Bind { iface: String, errno: Errno },
    #[error("dhcp: recvfrom on the AF_PACKET socket: {errno}")]
    Recv { errno: Errno },
    #[error("dhcp: poll: {errno}")]
    Poll { errno: Errno },
    #[error("DHCP failed on every interface: {}", describe(.0))]
    NoLease(Vec<NicFailure>),
}

fn describe(failures: &[NicFailure]) -> String {
    let parts: Vec<String> = failures
        .iter()
        .map(|f| match f.last_send_error {
            Some(errno) => format!("{}: {} (last send error: {errno})", f.iface, f.reason),
            None => format!("{}: {}", f.iface, f.reason),
        })
        .collect();
    parts.join("; ")
}

/// One interface in the race.
struct Lane<'a> {
    nic: &'a Nic,
    udp: OwnedFd,
    client: Client,
    /// False until the interface has carrier and its client got `Start`.
    started: bool,
    deadline: Option<Duration>,
    failure: Option<String>,
    last_send_error: Option<Errno>,
}

/// How often interfaces still without carrier are looked at.
const CARRIER_POLL: Duration = Duration::from_millis(20);

/// Runs one DHCP client per interface at once and returns the index (into `nics`) of the first
/// interface to get a lease, with that lease. An interface joins the race when it has carrier;
/// one still without carrier after `carrier_timeout` drops out. Configuring the address and
/// bringing the other interfaces down is the caller's job.
pub fn race(nics: &[Nic], cfg: &DriverConfig) -> Result<(usize, Lease), DriverError> {
    if nics.is_empty() {
        return Err(DriverError::NoInterfaces);
    }
    // Open the receive side before anything is sent, so no early reply is missed.
    let packet = socket(
        AddressFamily::Packet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        SockProtocol::EthIp,
    )
    .map_err(|errno| DriverError::Socket {
        iface: "*".to_string(),
        kind: "AF_PACKET, SOCK_DGRAM, ETH_P_IP",
        errno,
    })?;
    let mut lanes = Vec::with_capacity(nics.len());
    for nic in nics {
        let client = Client::new(ClientConfig {
            mac: nic.mac,
            hostname: cfg.hostname.clone(),
            seed: seed(nic),
            first_timeout: cfg.first_timeout,
            max_timeout: cfg.max_timeout,
            total: cfg.total,
        });
        lanes.push(Lane {
            nic,
            udp: udp_socket(nic)?,
            client,
            started: false,
            deadline: None,
            failure: None,
            last_send_error: None,
        });
    }

    let origin = Instant::now();
    let mut buf = vec![0u8; RECV_BUF];
    loop {
        let now = origin.elapsed();
        for (i, lane) in lanes.iter_mut().enumerate() {
            if lane.started || lane.failure.is_some() {
                continue;
            }
            if (cfg.has_carrier)(&lane.nic.name) {
                lane.started = true;
                if now > CARRIER_POLL {
                    info!(
                        "dhcp {}: carrier after {} ms; joining the race",
                        lane.nic.name,
                        now.as_millis()
                    );
                }
                if let Some(lease) = lane.feed(Event::Start, now) {
                    return Ok((i, lease));
                }
            } else if now >= cfg.carrier_timeout {
                let why = format!(
                    "no carrier within {} s (cable, switch port?)",
                    cfg.carrier_timeout.as_secs()
                );
                warn!("dhcp {}: {why}; leaving it out", lane.nic.name);
                lane.failure = Some(why);
            }
        }
        for (i, lane) in lanes.iter_mut().enumerate() {
            if lane.deadline.is_some_and(|d| d <= now) {
                lane.deadline = None;
                if let Some(lease) = lane.feed(Event::Timer, now) {
                    return Ok((i, lease));
                }
            }
        }
        if lanes
            .iter()
            .all(|l| l.failure.is_some() || l.client.is_done())
        {
            return Err(DriverError::NoLease(
                lanes.iter().filter_map(Lane::failure).collect(),
            ));
        }

        let waiting_for_carrier = lanes.iter().any(|l| !l.started && l.failure.is_none());
        let timeout = lanes
            .iter()
            .filter_map(|l| l.deadline)
            .chain(waiting_for_carrier.then_some(now + CARRIER_POLL))
            .min()
            .map(|d| poll_timeout(d.saturating_sub(now)))
            .unwrap_or(PollTimeout::NONE);
        let mut fds = Vec::with_capacity(lanes.len() + 1);
        fds.push(PollFd::new(packet.as_fd(), PollFlags::POLLIN));
        fds.extend(
            lanes
                .iter()
                .map(|l| PollFd::new(l.udp.as_fd(), PollFlags::POLLIN)),
        );
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(errno) => return Err(DriverError::Poll { errno }),
        }
        let readable: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);

        if readable.first().copied().unwrap_or(false) {
            if let Some((i, lease)) = drain_packets(&packet, &mut lanes, &mut buf, origin)? {
                return Ok((i, lease));
            }
        }
        for (lane, _) in lanes
            .iter()
            .zip(readable.iter().skip(1))
            .filter(|(_, r)| **r)
        {
            lane.drain_udp(&mut buf);
        }
    }
}

impl Lane<'_> {
    /// Feeds one event to the client and carries out its actions; `Some` once bound.
    fn feed(&mut self, ev: Event<'_>, now: Duration) -> Option<Lease> {
        let iface = &self.nic.name;
        for action in self.client.on(ev, now) {
            match action {
                Action::Send(bytes) => {
                    let to = SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::BROADCAST, SERVER_PORT));
                    if let Err(errno) = sendto(self.udp.as_raw_fd(), &bytes, &to, MsgFlags::empty())
                    {
                        // A lost packet as far as DHCP is concerned: the client retransmits.
                        warn!("dhcp {iface}: sendto 255.255.255.255:67: {errno}");
                        self.last_send_error = Some(errno);
                    }
                }
                Action::ArmTimer(deadline) => self.deadline = Some(deadline),
                Action::Ignored(why) => debug!("dhcp {iface}: ignored a packet: {why}"),
                Action::Progress(p) if p.is_retransmission() => warn!("dhcp {iface}: {p}"),
                Action::Progress(p) => info!("dhcp {iface}: {p}"),
                Action::Bound(lease) => return Some(lease),
                Action::GiveUp(error) => {
                    warn!("dhcp {iface}: {error}");
                    self.deadline = None;
                    self.failure = Some(error.to_string());
                }
            }
        }
        None
    }

    /// What arrives on the UDP socket is a copy of what the packet socket already saw (and only
    /// the broadcast part of it); read it so that it does not fill the receive buffer.
    fn drain_udp(&self, buf: &mut [u8]) {
        loop {
            match recv(self.udp.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                Err(errno) => {
                    // E.g. a pending ICMP error: nothing to do with it, but do not spin.
                    debug!("dhcp {}: recv on the UDP socket: {errno}", self.nic.name);
                    return;
                }
            }
        }
    }

    fn failure(&self) -> Option<NicFailure> {
        Some(NicFailure {
            iface: self.nic.name.clone(),
            reason: self.failure.clone()?,
            last_send_error: self.last_send_error,
        })
    }
}

/// Reads every queued frame and hands the DHCP ones to the client of their interface.
fn drain_packets(
    packet: &OwnedFd,
    lanes: &mut [Lane<'_>],
    buf: &mut [u8],
    origin: Instant,
) -> Result<Option<(usize, Lease)>, DriverError> {
    loop {
        let (len, from) = match recvfrom::<LinkAddr>(packet.as_raw_fd(), buf) {
            Ok(got) => got,
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return Ok(None),
            Err(errno) => return Err(DriverError::Recv { errno }),
        };
        let Some(from) = from else { continue };
        if from.pkttype() == PACKET_OUTGOING {
            continue;
        }
        let Some(frame) = buf.get(..len) else {
            continue;
        };
        let Some(payload) = udp_payload(frame, CLIENT_PORT) else {
            continue;
        };
        let ifindex = from.ifindex();
        let Some((i, lane)) = lanes
            .iter_mut()
            .enumerate()
            .find(|(_, l)| usize::try_from(l.nic.ifindex).is_ok_and(|x| x == ifindex))
        else {
            continue;
        };
        if !lane.started || lane.client.is_done() {
            continue;
        }
        if let Some(lease) = lane.feed(Event::Packet(payload), origin.elapsed()) {
            return Ok(Some((i, lease)));
        }
    }
}

fn udp_socket(nic: &Nic) -> Result<OwnedFd, DriverError> {
    let iface = || nic.name.clone();
    let fd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(|errno| DriverError::Socket {
        iface: iface(),
        kind: "AF_INET, SOCK_DGRAM",
        errno,
    })?;
    let opt_err = |opt: &'static str| {
        move |errno| DriverError::SetSockOpt {
            iface: nic.name.clone(),
            opt,
            errno,
        }
    };
    // Every interface binds its own 0.0.0.0:68; SO_REUSEADDR together with SO_BINDTODEVICE
    // (set before bind) lets them coexist.
    setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(opt_err("SO_REUSEADDR"))?;
    setsockopt(&fd, sockopt::Broadcast, &true).map_err(opt_err("SO_BROADCAST"))?;
    setsockopt(&fd, sockopt::BindToDevice, &OsString::from(&nic.name))
        .map_err(opt_err("SO_BINDTODEVICE"))?;
    let local = SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, CLIENT_PORT));
    bind(fd.as_raw_fd(), &local).map_err(|errno| DriverError::Bind {
        iface: iface(),
        errno,
    })?;
    Ok(fd)
}

/// Seeds a client's xids and jitter. Not from /dev/urandom: on Linux ≥ 5.18 reading it before
/// the CRNG is ready runs the jitter-entropy generator, which took over a second of a TCG boot.
/// std's `RandomState` keys come from getrandom(GRND_INSECURE), which never blocks; the MAC and
/// ifindex keep nodes that boot at the same instant apart even if those keys were weak.
fn seed(nic: &Nic) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(&nic.mac);
    h.write_u32(nic.ifindex);
    h.finish()
}

/// Rounds up to whole milliseconds, so that poll does not wake just before a deadline.
fn poll_timeout(d: Duration) -> PollTimeout {
    let ms = d.as_micros().div_ceil(1000);
    u32::try_from(ms)
        .ok()
        .and_then(|ms| PollTimeout::try_from(ms).ok())
        .unwrap_or(PollTimeout::MAX)
}
