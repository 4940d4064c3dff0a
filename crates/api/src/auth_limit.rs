//! Failed authentications, counted per client address over a sliding
//! minute: the calls after the allowed number of failures are refused
//! until the oldest failure is a minute old. Pure bookkeeping, the clock
//! passed in, so tests can drive it.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How far back failures count.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

/// Client addresses tracked at most: at the cap, addresses whose failures
/// are all a minute old are forgotten first, then the one whose newest
/// failure is oldest. Memory stays bounded whatever the network sends.
const MAX_ADDRESSES: usize = 4096;

/// Who a failure counts against: an IPv4 address, or an IPv6 /64 (one
/// host may hold a whole /64 and pick a new address per call).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(crate) struct ClientKey(IpAddr);

impl From<IpAddr> for ClientKey {
    fn from(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    ClientKey(IpAddr::V6(prefix.into()))
                }
            },
        }
    }
}

/// Failed authentications per client over the last [`WINDOW`].
pub(crate) struct FailedAuths {
    allowed: usize,
    failures: Mutex<HashMap<ClientKey, VecDeque<Instant>>>,
}

impl FailedAuths {
    /// `allowed` failures a minute per client; the call after them is
    /// refused.
    pub(crate) fn new(allowed: u32) -> FailedAuths {
        FailedAuths {
            allowed: allowed.max(1) as usize,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// When `client` has used up its failures: how long until it may try
    /// again.
    pub(crate) fn locked_out(&self, client: ClientKey, now: Instant) -> Option<Duration> {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let times = failures.get_mut(&client)?;
        forget_old(times, now);
        if times.len() < self.allowed {
            return None;
        }
        let oldest = *times.front()?;
        Some(WINDOW.saturating_sub(now.saturating_duration_since(oldest)))
    }

    /// Counts one failure against `client`.
    pub(crate) fn record(&self, client: ClientKey, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if !failures.contains_key(&client) && failures.len() >= MAX_ADDRESSES {
            failures.retain(|_, times| {
                forget_old(times, now);
                !times.is_empty()
            });
            if failures.len() >= MAX_ADDRESSES
                && let Some(stalest) = failures
                    .iter()
                    .min_by_key(|(_, times)| times.back().copied())
                    .map(|(key, _)| *key)
            {
                failures.remove(&stalest);
            }
        }
        let times = failures.entry(client).or_default();
        forget_old(times, now);
        times.push_back(now);
        // Only the newest `allowed` matter for a lock-out.
        while times.len() > self.allowed {
            times.pop_front();
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.failures.lock().unwrap().len()
    }
}

fn forget_old(times: &mut VecDeque<Instant>, now: Instant) {
    while times
        .front()
        .is_some_and(|&at| now.saturating_duration_since(at) >= WINDOW)
    {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> ClientKey {
        text.parse::<IpAddr>().unwrap().into()
    }

    #[test]
    fn the_eleventh_failure_in_a_minute_is_locked_out_until_the_first_ages() {
        let limit = FailedAuths::new(10);
        let start = Instant::now();
        let client = key("10.0.0.9");
        for second in 0..10 {
            let at = start + Duration::from_secs(second * 5);
            assert_eq!(limit.locked_out(client, at), None, "failure {second}");
            limit.record(client, at);
        }
        // 10 failures between 0 s and 45 s: locked until the first is 60 s old.
        let at = start + Duration::from_secs(50);
        assert_eq!(limit.locked_out(client, at), Some(Duration::from_secs(10)));
        assert_eq!(limit.locked_out(key("10.0.0.10"), at), None);
        assert_eq!(
            limit.locked_out(client, start + Duration::from_secs(60)),
            None
        );
    }

    #[test]
    fn an_ipv6_client_counts_by_its_64_and_a_mapped_ipv4_as_itself() {
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::7"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:10.0.0.9"), key("10.0.0.9"));
    }

    #[test]
    fn memory_stays_bounded_and_a_locked_out_client_survives_a_flood_of_new_ones() {
        let limit = FailedAuths::new(2);
        let start = Instant::now();
        let attacker = key("10.0.0.1");
        for offset in 0..(MAX_ADDRESSES as u32 + 500) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a01_0000 + offset));
            limit.record(ip.into(), start);
        }
        assert!(limit.tracked() <= MAX_ADDRESSES);
        let later = start + Duration::from_secs(61);
        limit.record(attacker, later);
        limit.record(attacker, later);
        // The stale addresses were forgotten to make room; the attacker's
        // fresh failures were kept.
        assert!(limit.tracked() <= MAX_ADDRESSES);
        assert!(limit.locked_out(attacker, later).is_some());
    }
}
