//! Which addresses outbound requests (http steps, polls, webhooks) may reach.
//!
//! Off by default: self-hosted integrations call internal systems. For multi-tenant hosting,
//! `deny_private` refuses loopback, private (RFC 1918, fc00::/7), link-local (169.254/16,
//! fe80::/10), unspecified and similar addresses — both IP literals in URLs and what host
//! names resolve to (the client's DNS resolver drops them, so a name cannot be pointed at an
//! internal address later) — except hosts and networks on the allow-list.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// Refuse internal addresses.
    pub deny_private: bool,
    /// Allowed anyway: host names (`erp.internal`), addresses and networks (`10.1.0.0/16`).
    pub allow: Vec<String>,
}

impl OutboundPolicy {
    /// Parses an allow-list entry list (comma-separated), checking each.
    ///
    /// # Errors
    /// An entry that is neither a host name nor an address nor a network.
    pub fn parse_allow(list: &str) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item.contains('/') && cidr(item).is_none() {
                return Err(format!("invalid network `{item}`: expected an address/prefix like 10.0.0.0/8"));
            }
            out.push(item.to_ascii_lowercase());
        }
        Ok(out)
    }

    fn host_allowed(&self, host: &str) -> bool {
        self.allow.iter().any(|a| a == &host.to_ascii_lowercase())
    }

    /// Whether `host`, resolved to `ip`, may be reached (an allowed name reaches any address).
    pub fn allows(&self, host: &str, ip: IpAddr) -> bool {
        self.host_allowed(host) || self.allows_ip(ip)
    }

    /// Whether `ip` may be reached.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        if !self.deny_private || !internal(ip) {
            return true;
        }
        self.allow.iter().any(|a| match cidr(a) {
            Some((net, bits)) => in_net(ip, net, bits),
            None => a.parse::<IpAddr>().is_ok_and(|x| x == ip),
        })
    }

    /// Checks a URL before a request: its host, when it is an address or an allowed name.
    ///
    /// # Errors
    /// A refused address, said plainly.
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), String> {
        if !self.deny_private {
            return Ok(());
        }
        match url.host() {
            Some(url::Host::Ipv4(ip)) if !self.allows_ip(IpAddr::V4(ip)) => Err(refused(&ip.to_string())),
            Some(url::Host::Ipv6(ip)) if !self.allows_ip(IpAddr::V6(ip)) => Err(refused(&ip.to_string())),
            Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") && !self.host_allowed(d) => {
                Err(refused(d))
            }
            _ => Ok(()),
        }
    }

    /// Checks a host (and what it resolves to) a connection is about to be made to — for
    /// clients that are not reqwest (syslog over UDP/TCP).
    ///
    /// # Errors
    /// A refused address, or a name that does not resolve.
    pub async fn check_host(&self, host: &str, port: u16) -> Result<(), String> {
        if !self.deny_private || self.host_allowed(host) {
            return Ok(());
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return if self.allows_ip(ip) { Ok(()) } else { Err(refused(host)) };
        }
        let addrs: Vec<SocketAddr> =
            tokio::net::lookup_host((host, port)).await.map_err(|e| format!("cannot resolve `{host}`: {e}"))?.collect();
        match addrs.iter().find(|a| !self.allows_ip(a.ip())) {
            Some(a) => Err(refused(&format!("{host} is {}", a.ip()))),
            None => Ok(()),
        }
    }

    /// Resolves `host` and checks what it resolves to, for clients that connect by address
    /// (the SMTP transport): `Ok(None)` when nothing needs pinning (the policy is off, or the
    /// name is allowed), else the first allowed address, which the caller connects to instead
    /// of resolving the name again (a second lookup could answer differently: rebinding).
    ///
    /// # Errors
    /// A refused address, or a name that does not resolve.
    pub async fn resolve_checked(&self, host: &str, port: u16) -> Result<Option<IpAddr>, String> {
        if !self.deny_private || self.host_allowed(host) {
            return Ok(None);
        }
        if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            return if self.allows_ip(ip) { Ok(Some(ip)) } else { Err(refused(host)) };
        }
        let addrs: Vec<SocketAddr> =
            tokio::net::lookup_host((host, port)).await.map_err(|e| format!("cannot resolve `{host}`: {e}"))?.collect();
        if let Some(a) = addrs.iter().find(|a| !self.allows_ip(a.ip())) {
            return Err(refused(&format!("{host} is {}", a.ip())));
        }
        addrs.first().map(|a| Some(a.ip())).ok_or_else(|| format!("`{host}` resolves to no address"))
    }

    /// A DNS resolver that drops refused addresses (names on the allow-list resolve freely).
    pub fn resolver(&self) -> Arc<GuardedResolver> {
        Arc::new(GuardedResolver { policy: self.clone() })
    }
}

fn refused(what: &str) -> String {
    format!(
        "outbound requests to internal addresses are refused on this server ({what}); an administrator can allow it"
    )
}

/// True for addresses inside an organisation or the machine.
fn internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64 // 100.64/10 shared
                || v4.octets()[0] == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback() || v6.is_unspecified() || (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

fn cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, bits) = s.split_once('/')?;
    let ip: IpAddr = addr.trim().parse().ok()?;
    let bits: u8 = bits.trim().parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((ip, bits))
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - u32::from(bits)) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - u32::from(bits)) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Resolves names with the system resolver and drops refused addresses.
#[derive(Debug)]
pub struct GuardedResolver {
    policy: OutboundPolicy,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed_name = policy.host_allowed(&host);
            let kept: Vec<SocketAddr> =
                addrs.into_iter().filter(|a| allowed_name || policy.allows_ip(a.ip())).collect();
            if kept.is_empty() {
                return Err(refused(&host).into());
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_internal_addresses_unless_allowed() {
        let p = OutboundPolicy {
            deny_private: true,
            allow: OutboundPolicy::parse_allow("10.1.0.0/16, erp.internal, 192.168.5.7").unwrap(),
        };
        let ok = |s: &str| p.allows_ip(s.parse().unwrap());
        assert!(ok("93.184.216.34"));
        for bad in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.3.4",
            "192.168.1.1",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "fe80::1",
            "0.0.0.0",
            "::ffff:127.0.0.1",
            "100.64.0.1",
        ] {
            assert!(!ok(bad), "{bad}");
        }
        assert!(ok("10.1.200.3") && ok("192.168.5.7"));
        assert!(p.check_url(&"http://127.0.0.1:8080/x".parse().unwrap()).is_err());
        assert!(p.check_url(&"http://localhost/x".parse().unwrap()).is_err());
        assert!(p.check_url(&"http://10.1.0.9/x".parse().unwrap()).is_ok());
        assert!(p.check_url(&"http://example.com/x".parse().unwrap()).is_ok(), "names are checked when resolved");
        assert!(OutboundPolicy::default().check_url(&"http://127.0.0.1/".parse().unwrap()).is_ok(), "off by default");
        assert!(OutboundPolicy::parse_allow("10.0.0.0/99").is_err());
    }
}
