//! Webhooks, the pure part: which destinations are allowed, how a delivery is signed
//! (Standard Webhooks), and when a failed delivery is tried again.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use base64::Engine;
use hmac::{KeyInit, Mac};

/// Why a webhook URL is refused; each says what to give instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationRefused {
    #[error(
        "`{0}` is not a URL: give the full address, e.g. https://hooks.example.com/fulfilment"
    )]
    NotAUrl(String),
    #[error("webhook URLs must use https (got `{0}`)")]
    NotHttps(String),
    #[error("the webhook URL has no host name")]
    NoHost,
    #[error("webhook URLs must not carry a user name or password: authenticate deliveries by their signature instead")]
    Credentials,
    #[error("`{host}` is {what}: webhooks go only to public internet addresses")]
    NotPublic { host: String, what: &'static str },
    #[error("`{0}` does not resolve to any address")]
    Unresolved(String),
}

/// A webhook URL as checked when it is registered and again before every delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub url: url::Url,
}

impl Destination {
    /// Parses and checks what can be checked without DNS: the scheme (https, or http when
    /// `allow_private` is on for development), no credentials, and an IP literal's class.
    /// A host name is checked by `check_resolved` once resolved.
    pub fn parse(text: &str, allow_private: bool) -> Result<Destination, DestinationRefused> {
        let url = url::Url::parse(text.trim())
            .map_err(|_| DestinationRefused::NotAUrl(text.to_owned()))?;
        match url.scheme() {
            "https" => {}
            "http" if allow_private => {}
            other => return Err(DestinationRefused::NotHttps(other.to_owned())),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(DestinationRefused::Credentials);
        }
        match url.host() {
            None => return Err(DestinationRefused::NoHost),
            Some(url::Host::Ipv4(ip)) => check_address(&ip.to_string(), ip.into(), allow_private)?,
            Some(url::Host::Ipv6(ip)) => check_address(&ip.to_string(), ip.into(), allow_private)?,
            Some(url::Host::Domain(_)) => {}
        }
        Ok(Destination { url })
    }

    /// The host name to resolve, when the URL names one (not an IP literal).
    pub fn domain(&self) -> Option<&str> {
        self.url.domain()
    }
}

/// Checks every address a host resolved to: one that is not public refuses the host (a
/// name that resolves to a mix is refused, since any of them may be used).
pub fn check_resolved(
    host: &str,
    addresses: &[IpAddr],
    allow_private: bool,
) -> Result<(), DestinationRefused> {
    if addresses.is_empty() {
        return Err(DestinationRefused::Unresolved(host.to_owned()));
    }
    for address in addresses {
        check_address(host, *address, allow_private)?;
    }
    Ok(())
}

fn check_address(host: &str, ip: IpAddr, allow_private: bool) -> Result<(), DestinationRefused> {
    match address_class(ip) {
        Some(what) if !allow_private => Err(DestinationRefused::NotPublic {
            host: host.to_owned(),
            what,
        }),
        _ => Ok(()),
    }
}

/// What kind of non-public address `ip` is, or None for a public one. Written out because
/// std's `IpAddr::is_global` is not stable; the ranges are IANA's special-purpose
/// registries, the cloud metadata addresses among them (169.254.169.254 is link-local,
/// fd00:ec2::254 unique-local).
pub fn address_class(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_class(v4),
        IpAddr::V6(v6) => v6_class(v6),
    }
}

/// Only global unicast (2000::/3) can be public, less the special ranges inside it; an
/// address that embeds an IPv4 address (mapped, NAT64, 6to4) is judged by that address.
fn v6_class(v6: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return v4_class(v4);
    }
    let segments = v6.segments();
    let embedded_v4 = |high: u16, low: u16| {
        let [a, b] = high.to_be_bytes();
        let [c, d] = low.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    if segments[0] == 0x0064 && segments[1] == 0xff9b && segments[2..6] == [0, 0, 0, 0] {
        // NAT64 (64:ff9b::/96): the IPv4 address it embeds decides.
        return v4_class(embedded_v4(segments[6], segments[7]));
    }
    if segments[0] & 0xe000 != 0x2000 {
        return Some(if v6.is_loopback() {
            "a loopback address"
        } else if v6.is_unspecified() {
            "the unspecified address"
        } else if segments[0] & 0xfe00 == 0xfc00 {
            "a private (unique local) address"
        } else if segments[0] & 0xffc0 == 0xfe80 || segments[0] & 0xffc0 == 0xfec0 {
            "a link-local or site-local address"
        } else if v6.is_multicast() {
            "a multicast address"
        } else {
            "not a global unicast address"
        });
    }
    if segments[0] == 0x2002 {
        // 6to4 (2002::/16): the IPv4 address it embeds decides.
        return v4_class(embedded_v4(segments[1], segments[2]));
    }
    if segments[0] == 0x2001 && segments[1] < 0x0200 {
        // 2001::/23: IETF protocol assignments (Teredo among them).
        return Some("an IETF protocol address");
    }
    if segments[0] == 0x2001 && segments[1] == 0x0db8 {
        return Some("a documentation address");
    }
    None
}

fn v4_class(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() {
        Some("a private address")
    } else if ip.is_link_local() {
        Some("a link-local address (cloud metadata among them)")
    } else if a == 0 {
        Some("a 'this network' address")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a shared (carrier-grade NAT) address")
    } else if a == 192 && b == 0 && c == 0 {
        Some("an IETF protocol address")
    } else if (a == 192 && b == 0 && c == 2)
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
    {
        Some("a documentation address")
    } else if a == 198 && (b == 18 || b == 19) {
        Some("a benchmarking address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if a >= 240 {
        Some("a reserved or broadcast address")
    } else {
        None
    }
}

/// A signing secret as Standard Webhooks writes it: `whsec_` and the key in base64.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new random signing secret (24 bytes, as the specification suggests at least).
pub fn new_secret() -> String {
    let key: [u8; 24] = rand::random();
    format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` under the secret's key.
/// A secret that is not `whsec_` + base64 is a stored value we wrote ourselves gone bad.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
    let key = secret
        .strip_prefix(SECRET_PREFIX)
        .and_then(|key| base64::engine::general_purpose::STANDARD.decode(key).ok())
        .ok_or_else(|| "the stored webhook secret is not a whsec_ secret".to_owned())?;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key)
        .map_err(|e| format!("webhook secret: {e}"))?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// How long to wait before attempt `attempt + 1` after `attempt` failed: `base` doubling
/// per attempt up to an hour, times `jitter` in [0.5, 1] (so that endpoints that failed
/// together are not all tried again in the same instant).
pub fn retry_delay(base: Duration, attempt: u32, jitter: f64) -> Duration {
    let doubled = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    doubled
        .min(Duration::from_secs(3600))
        .mul_f64(jitter.clamp(0.5, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> bool {
        Destination::parse(url, false).is_err()
    }

    #[test]
    fn only_https_urls_to_public_hosts_pass_unless_development_allows_private_ones() {
        assert!(Destination::parse("https://hooks.example.com/x?y=1", false).is_ok());
        assert!(Destination::parse("https://93.184.216.34/hook", false).is_ok());
        assert!(Destination::parse("https://[2606:2800:220:1::1]/hook", false).is_ok());
        assert!(Destination::parse("https://[2002:5db8:d822::1]/hook", false).is_ok());
        for url in [
            "http://hooks.example.com/",
            "ftp://hooks.example.com/",
            "https://user:pw@hooks.example.com/",
            "https://127.0.0.1/",
            "https://10.0.0.8/",
            "https://172.20.1.1/",
            "https://192.168.1.10/",
            "https://169.254.169.254/latest/meta-data/",
            "https://100.100.1.1/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[fd00:ec2::254]/",
            "https://[fe80::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[64:ff9b::a00:1]/",
            "https://[::ffff:0:a00:1]/",
            "https://[64:ff9b:1::1]/",
            "https://[2002:a00:1::1]/",
            "https://[2001::1]/",
            "https://[fec0::1]/",
            "https://[2001:db8::1]/",
            "not a url",
        ] {
            assert!(refused(url), "{url} must be refused");
        }
        assert!(Destination::parse("http://127.0.0.1:8080/hook", true).is_ok());
        assert!(Destination::parse("https://[::1]/", true).is_ok());
    }

    #[test]
    fn a_name_that_resolves_to_any_private_address_is_refused() {
        let public: IpAddr = "93.184.216.34".parse().unwrap();
        let private: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(check_resolved("h", &[public], false).is_ok());
        assert!(check_resolved("h", &[public, private], false).is_err());
        assert!(check_resolved("h", &[private], true).is_ok());
        assert!(check_resolved("h", &[], true).is_err());
    }

    #[test]
    fn the_signature_is_the_standard_webhooks_one() {
        // The specification's example (standard-webhooks, spec/standard-webhooks.md).
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(sign("not-a-secret", "id", 1, b"").is_err());
        let fresh = new_secret();
        assert!(fresh.starts_with(SECRET_PREFIX) && sign(&fresh, "id", 1, b"{}").is_ok());
    }

    #[test]
    fn retries_double_up_to_an_hour_with_jitter() {
        let base = Duration::from_secs(5);
        assert_eq!(retry_delay(base, 1, 1.0), Duration::from_secs(5));
        assert_eq!(retry_delay(base, 2, 1.0), Duration::from_secs(10));
        assert_eq!(retry_delay(base, 4, 0.5), Duration::from_secs(20));
        assert_eq!(retry_delay(base, 30, 1.0), Duration::from_secs(3600));
        // A day of attempts takes about 33 of them.
        let day: Duration = (1..=33).map(|n| retry_delay(base, n, 1.0)).sum();
        assert!(day > Duration::from_secs(86_400), "{day:?}");
    }
}
