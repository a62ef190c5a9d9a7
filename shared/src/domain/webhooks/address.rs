//! The SSRF guard: an operator's endpoint URL must not turn the platform into a way to reach its own
//! network. Every address an endpoint's host resolves to is checked at delivery time (DNS may change after
//! registration), and the connection goes to the checked address, never to a second lookup; redirects are
//! not followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether a webhook may be delivered to `ip`. Refused: loopback (unless `allow_loopback`, dev mode and
/// tests), private, carrier-grade NAT, link-local (the cloud metadata services live there:
/// 169.254.169.254, fd00:ec2::254), unique-local, unspecified, multicast, broadcast, documentation and
/// benchmarking ranges, and IPv4 addresses dressed as IPv6 (mapped, compatible, SIIT, NAT64, 6to4)
/// that are refused as IPv4, and local-use NAT64 prefixes.
pub fn is_deliverable(ip: IpAddr, allow_loopback: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_deliverable(v4, allow_loopback),
        IpAddr::V6(v6) => v6_deliverable(v6, allow_loopback),
    }
}

fn v4_deliverable(ip: Ipv4Addr, allow_loopback: bool) -> bool {
    if ip.is_loopback() {
        return allow_loopback;
    }
    let [a, b, c, _] = ip.octets();
    let refused = ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT, 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments, 192.0.0.0/24
        || (a == 198 && (18..20).contains(&b)) // benchmarking, 198.18.0.0/15
        || a >= 240; // reserved, 240.0.0.0/4
    !refused
}

fn v6_deliverable(ip: Ipv6Addr, allow_loopback: bool) -> bool {
    if ip.is_loopback() {
        return allow_loopback;
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_deliverable(v4, allow_loopback);
    }
    let segments = ip.segments();
    let v4_at = |high: u16, low: u16| {
        let ([a, b], [c, d]) = (high.to_be_bytes(), low.to_be_bytes());
        Ipv4Addr::new(a, b, c, d)
    };
    // ::a.b.c.d (deprecated IPv4-compatible), ::ffff:0:a.b.c.d (SIIT) and 64:ff9b::a.b.c.d (NAT64) reach
    // the IPv4 address inside; so may a local-use NAT64 prefix, 64:ff9b:1::/48.
    let embeds_v4 = segments[..6] == [0, 0, 0, 0, 0, 0]
        || segments[..6] == [0, 0, 0, 0, 0xffff, 0]
        || segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    if embeds_v4 {
        return v4_deliverable(v4_at(segments[6], segments[7]), allow_loopback);
    }
    if segments[..3] == [0x64, 0xff9b, 1] {
        return false;
    }
    // 6to4, 2002:a.b.c.d::/48, tunnels to the IPv4 address in its prefix.
    if segments[0] == 0x2002 && !v4_deliverable(v4_at(segments[1], segments[2]), false) {
        return false;
    }
    let refused = ip.is_unspecified()
        || ip.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00 // unique local, fc00::/7 (fd00:ec2::254 is AWS's metadata)
        || (segments[0] & 0xffc0) == 0xfe80 // link local, fe80::/10
        || (segments[0] & 0xffc0) == 0xfec0 // site local (deprecated), fec0::/10
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation, 2001:db8::/32
        || segments[0] == 0x0100 && segments[1..4] == [0, 0, 0]; // discard-only, 100::/64
    !refused
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let cases: &[(&str, bool, bool)] = &[
            ("93.184.215.14", false, true),
            ("8.8.8.8", false, true),
            ("2606:4700:4700::1111", false, true),
            ("127.0.0.1", false, false),
            ("127.0.0.1", true, true),
            ("::1", false, false),
            ("::1", true, true),
            ("10.1.2.3", true, false),
            ("172.16.0.1", false, false),
            ("172.31.255.255", false, false),
            ("172.32.0.1", false, true),
            ("192.168.1.1", false, false),
            ("169.254.169.254", true, false),
            ("100.64.0.1", false, false),
            ("100.127.255.255", false, false),
            ("100.128.0.1", false, true),
            ("0.0.0.0", true, false),
            ("0.1.2.3", false, false),
            ("255.255.255.255", false, false),
            ("224.0.0.1", false, false),
            ("192.0.2.1", false, false),
            ("198.18.0.1", false, false),
            ("240.0.0.1", false, false),
            ("::", false, false),
            ("fd00:ec2::254", false, false),
            ("fc00::1", false, false),
            ("fe80::1", false, false),
            ("ff02::1", false, false),
            ("2001:db8::1", false, false),
            ("::ffff:169.254.169.254", false, false),
            ("::ffff:10.0.0.1", false, false),
            ("::ffff:127.0.0.1", true, true),
            ("::ffff:8.8.8.8", false, true),
            ("::10.0.0.1", false, false),
            ("64:ff9b::a9fe:a9fe", false, false),
            ("64:ff9b::808:808", false, true),
            ("::ffff:0:a00:1", false, false),
            ("64:ff9b:1::808:808", false, false),
            ("2002:a00:1::1", false, false),
            ("2002:7f00:1::1", true, false),
            ("2002:808:808::1", false, true),
        ];
        for (ip, allow_loopback, want) in cases {
            let parsed: IpAddr = ip.parse().unwrap();
            assert_eq!(
                is_deliverable(parsed, *allow_loopback),
                *want,
                "{ip} (loopback allowed: {allow_loopback})"
            );
        }
    }
}
