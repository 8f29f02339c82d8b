//! Finding a DHCP reply in a raw IPv4 packet: the header checks of RFC 791 and RFC 768 that the
//! kernel would have done for a UDP socket, for the packet socket that the driver must use before
//! the interface has an address.

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

fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    let bytes: [u8; 2] = b.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_be_bytes(bytes))
}

#[cfg(test)]
// Test arithmetic on lengths, not input handling.
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;

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
}
