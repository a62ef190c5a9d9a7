//! The budget of connections still in their handshake (accepted, not yet authenticated), which fails
//! fair: a newcomer is never refused for want of room; the oldest pending handshake of its address —
//! or, node-wide, the oldest of all — is evicted instead. A flood of idle handshakes from one address
//! (or a reconnect storm) then costs its own oldest attempts, while a real client, whose handshake takes
//! milliseconds, gets in.
//!
//! A handshake counts against its client's address once that is known: the TCP peer, or behind a
//! trusted proxy the address the proxy put in `X-Forwarded-For` (read with the request head). Until
//! then only the node-wide cap applies to connections from a trusted proxy.

use ipnet::IpNet;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Pending handshakes, oldest first, and who holds them.
#[derive(Default)]
struct Pending {
    next_id: u64,
    /// Id (in arrival order) → the handshake's address (once known) and its eviction signal.
    by_age: BTreeMap<u64, (Option<IpAddr>, Arc<Notify>)>,
    /// Each address's pending handshakes, oldest first.
    by_address: HashMap<IpAddr, VecDeque<u64>>,
}

impl Pending {
    /// Forgets handshake `id`; returns its eviction signal when it was still pending.
    fn remove(&mut self, id: u64) -> Option<Arc<Notify>> {
        let (address, evict) = self.by_age.remove(&id)?;
        if let Some(address) = address {
            if let Some(queue) = self.by_address.get_mut(&address) {
                queue.retain(|other| *other != id);
                if queue.is_empty() {
                    self.by_address.remove(&address);
                }
            }
        }
        Some(evict)
    }

    /// Evicts the oldest pending handshakes of `address` until fewer than `cap` remain (`cap` 0: none).
    fn make_room_for(&mut self, address: IpAddr, cap: usize) {
        while cap != 0 && self.by_address.get(&address).map_or(0, VecDeque::len) >= cap {
            let oldest = self.by_address[&address][0];
            if let Some(evict) = self.remove(oldest) {
                evict.notify_one();
            }
        }
    }
}

/// The node's pending handshakes; see the module documentation.
pub struct HandshakeBudget {
    pending: Arc<Mutex<Pending>>,
    per_address: usize,
    node_wide: usize,
}

impl HandshakeBudget {
    /// At most `per_address` pending handshakes per client address and `node_wide` in all (0: no cap).
    pub fn new(per_address: usize, node_wide: usize) -> Self {
        Self {
            pending: Arc::default(),
            per_address,
            node_wide,
        }
    }

    /// Registers a new handshake, from `address` when known (not behind a trusted proxy), evicting
    /// the oldest handshakes that would leave it over a cap.
    pub fn admit(&self, address: Option<IpAddr>) -> HandshakeTicket {
        let mut pending = self.pending.lock().expect("handshake budget lock");
        while self.node_wide != 0 && pending.by_age.len() >= self.node_wide {
            let Some((&oldest, _)) = pending.by_age.first_key_value() else {
                break;
            };
            if let Some(evict) = pending.remove(oldest) {
                evict.notify_one();
            }
        }
        let id = pending.next_id;
        pending.next_id += 1;
        let evict = Arc::new(Notify::new());
        pending.by_age.insert(id, (None, Arc::clone(&evict)));
        drop(pending);
        let ticket = HandshakeTicket {
            id,
            pending: Arc::clone(&self.pending),
            per_address: self.per_address,
            evict,
        };
        if let Some(address) = address {
            ticket.attribute(address);
        }
        ticket
    }

    /// Handshakes pending now.
    #[cfg(test)]
    fn pending_count(&self) -> usize {
        self.pending.lock().expect("handshake budget lock").by_age.len()
    }
}

/// One pending handshake's place in the budget; dropping it (the client authenticated, was refused or
/// left) gives the place back.
pub struct HandshakeTicket {
    id: u64,
    pending: Arc<Mutex<Pending>>,
    per_address: usize,
    evict: Arc<Notify>,
}

impl HandshakeTicket {
    /// Counts this handshake against `address` (once; later calls are ignored), evicting the oldest
    /// of that address's others if it is at its cap.
    pub fn attribute(&self, address: IpAddr) {
        let mut pending = self.pending.lock().expect("handshake budget lock");
        match pending.by_age.get(&self.id) {
            Some((None, _)) => {}
            // Already attributed, or evicted meanwhile.
            _ => return,
        }
        pending.make_room_for(address, self.per_address);
        if let Some(entry) = pending.by_age.get_mut(&self.id) {
            entry.0 = Some(address);
        }
        pending.by_address.entry(address).or_default().push_back(self.id);
    }

    /// Completes when this handshake is evicted to make room for newer ones.
    pub fn evicted(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let evict = Arc::clone(&self.evict);
        async move { evict.notified().await }
    }
}

impl Drop for HandshakeTicket {
    fn drop(&mut self) {
        self.pending.lock().expect("handshake budget lock").remove(self.id);
    }
}

/// The client's address: the TCP `peer`, unless the peer is a trusted proxy; then the nearest address
/// in `X-Forwarded-For` (read right to left, as each proxy appends the address it saw) that is not
/// itself a trusted proxy. A peer outside `trusted` cannot choose its address by writing the header.
pub fn client_address(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |address: &IpAddr| trusted.iter().any(|net| net.contains(address));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    let mut nearest = peer;
    for hop in header.rsplit(',') {
        let Ok(address) = hop.trim().parse::<IpAddr>() else {
            // A hop that is no address ends what can be believed.
            break;
        };
        nearest = address;
        if !is_trusted(&address) {
            break;
        }
    }
    nearest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn is_evicted(ticket: &HandshakeTicket) -> bool {
        use futures_util::FutureExt;
        ticket.evicted().now_or_never().is_some()
    }

    #[test]
    fn a_newcomer_evicts_the_oldest_handshake_of_its_address() {
        let budget = HandshakeBudget::new(2, 0);
        let first = budget.admit(Some(ip("192.0.2.1")));
        let second = budget.admit(Some(ip("192.0.2.1")));
        let other = budget.admit(Some(ip("192.0.2.2")));
        let third = budget.admit(Some(ip("192.0.2.1")));
        assert!(is_evicted(&first), "the oldest of the address made room");
        assert!(!is_evicted(&second) && !is_evicted(&third) && !is_evicted(&other));
        assert_eq!(budget.pending_count(), 3);
        drop((second, third, other));
        drop(first);
        assert_eq!(budget.pending_count(), 0, "every place given back");
    }

    #[test]
    fn the_node_wide_cap_evicts_the_oldest_of_all() {
        let budget = HandshakeBudget::new(0, 3);
        let tickets: Vec<_> = (1..=4)
            .map(|n| budget.admit(Some(ip(&format!("192.0.2.{n}")))))
            .collect();
        assert!(is_evicted(&tickets[0]));
        assert!(tickets[1..].iter().all(|t| !is_evicted(t)));
        assert_eq!(budget.pending_count(), 3);
    }

    #[test]
    fn a_proxied_handshake_counts_against_its_client_once_known() {
        let budget = HandshakeBudget::new(1, 0);
        let proxied = budget.admit(None);
        let direct = budget.admit(Some(ip("198.51.100.7")));
        assert!(!is_evicted(&proxied), "no address yet: only the node-wide cap");
        proxied.attribute(ip("198.51.100.7"));
        assert!(is_evicted(&direct), "the client's older handshake made room");
        proxied.attribute(ip("203.0.113.1"));
        let again = budget.admit(Some(ip("198.51.100.7")));
        assert!(is_evicted(&proxied), "attributed once, to the first address");
        drop(again);
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let xff = Some("203.0.113.9, 198.51.100.4, 10.0.3.3");
        assert_eq!(client_address(ip("10.0.1.1"), xff, &trusted), ip("198.51.100.4"));
        assert_eq!(
            client_address(ip("192.0.2.8"), xff, &trusted),
            ip("192.0.2.8"),
            "an untrusted peer"
        );
        assert_eq!(client_address(ip("10.0.1.1"), None, &trusted), ip("10.0.1.1"));
        assert_eq!(
            client_address(ip("10.0.1.1"), Some("garbage, 10.0.0.2"), &trusted),
            ip("10.0.0.2"),
            "nothing past a malformed hop is believed"
        );
        assert_eq!(
            client_address(ip("10.0.1.1"), Some("2001:db8::1"), &trusted),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_address(ip("10.0.1.1"), xff, &[]),
            ip("10.0.1.1"),
            "no proxy trusted"
        );
    }
}
