//! Network interfaces: discovery from sysfs (`Documentation/ABI/testing/sysfs-class-net`) and
//! configuration over rtnetlink (rtnetlink(7)): link up/down, MTU, address, default route.
//! rtnetlink is async; a current-thread tokio runtime lives only as long as a [`Netlink`].

use rtnetlink::{LinkUnspec, RouteMessageBuilder};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};
use thiserror::Error;
use unionroot_core::addr::Mac;

#[derive(Debug, Error)]
pub enum NetError {
    #[error("cannot open a netlink socket: {0}")]
    Socket(std::io::Error),
    #[error("{what} on {iface}: {source}")]
    Netlink {
        what: String,
        iface: String,
        source: rtnetlink::Error,
    },
}

/// An Ethernet interface as sysfs lists it: found by [`ethernet_nics`], configured by
/// [`Netlink`], and handed to the DHCP driver once it is up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    pub name: String,
    pub ifindex: u32,
    pub mac: [u8; 6],
}

const SYS_NET: &str = "/sys/class/net";
const ARPHRD_ETHER: &str = "1";

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Ethernet interfaces that sysfs lists now, sorted by ifindex.
pub fn ethernet_nics() -> Vec<Nic> {
    let Ok(dir) = std::fs::read_dir(SYS_NET) else {
        return Vec::new();
    };
    let mut nics: Vec<Nic> = dir
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let base = format!("{SYS_NET}/{name}");
            if read_trim(&format!("{base}/type")).as_deref() != Some(ARPHRD_ETHER) {
                return None;
            }
            let Mac(mac) = Mac::parse(&read_trim(&format!("{base}/address"))?).ok()?;
            if mac == [0; 6] {
                return None;
            }
            let ifindex = read_trim(&format!("{base}/ifindex"))?.parse().ok()?;
            Some(Nic { name, ifindex, mac })
        })
        .collect();
    nics.sort_by_key(|n| n.ifindex);
    nics
}

/// Waits (polling sysfs) until at least one Ethernet interface exists: a driver's probe can
/// finish a little after its module is loaded.
pub fn wait_for_nics(bound: Duration) -> Vec<Nic> {
    let start = Instant::now();
    loop {
        let nics = ethernet_nics();
        if !nics.is_empty() || start.elapsed() >= bound {
            return nics;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn has_carrier(name: &str) -> bool {
    read_trim(&format!("{SYS_NET}/{name}/carrier")).as_deref() == Some("1")
}

/// A synchronous facade over an rtnetlink connection.
pub struct Netlink {
    rt: tokio::runtime::Runtime,
    handle: rtnetlink::Handle,
}

impl Netlink {
    pub fn new() -> Result<Self, NetError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(NetError::Socket)?;
        let handle = rt.block_on(async {
            let (conn, handle, _) = rtnetlink::new_connection()?;
            tokio::spawn(conn);
            Ok::<_, std::io::Error>(handle)
        });
        Ok(Netlink {
            rt,
            handle: handle.map_err(NetError::Socket)?,
        })
    }

    fn run<F>(&self, what: String, iface: &str, fut: F) -> Result<(), NetError>
    where
        F: std::future::Future<Output = Result<(), rtnetlink::Error>>,
    {
        self.rt.block_on(fut).map_err(|source| NetError::Netlink {
            what,
            iface: iface.into(),
            source,
        })
    }

    pub fn set_up(&self, nic: &Nic, up: bool) -> Result<(), NetError> {
        let b = LinkUnspec::new_with_index(nic.ifindex);
        let msg = if up { b.up() } else { b.down() }.build();
        let what = format!(
            "ip link set {} {}",
            nic.name,
            if up { "up" } else { "down" }
        );
        self.run(what, &nic.name, self.handle.link().set(msg).execute())
    }

    /// Brings `lo` up: NFS, portmap and much of userspace assume it.
    pub fn loopback_up(&self) -> Result<(), NetError> {
        let msg = LinkUnspec::new_with_index(1).up().build();
        self.run(
            "ip link set lo up".into(),
            "lo",
            self.handle.link().set(msg).execute(),
        )
    }

    pub fn set_mtu(&self, nic: &Nic, mtu: u32) -> Result<(), NetError> {
        let msg = LinkUnspec::new_with_index(nic.ifindex).mtu(mtu).build();
        self.run(
            format!("ip link set {} mtu {mtu}", nic.name),
            &nic.name,
            self.handle.link().set(msg).execute(),
        )
    }

    pub fn add_address(&self, nic: &Nic, addr: Ipv4Addr, prefix: u8) -> Result<(), NetError> {
        let req = self
            .handle
            .address()
            .add(nic.ifindex, IpAddr::V4(addr), prefix);
        self.run(
            format!("ip addr add {addr}/{prefix} dev {}", nic.name),
            &nic.name,
            req.execute(),
        )
    }

    pub fn add_default_route(&self, nic: &Nic, gateway: Ipv4Addr) -> Result<(), NetError> {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gateway)
            .output_interface(nic.ifindex)
            .build();
        let what = format!("ip route add default via {gateway} dev {}", nic.name);
        self.run(what, &nic.name, self.handle.route().add(route).execute())
    }
}
