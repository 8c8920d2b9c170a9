//! Virtual-host addressing: which bucket a `Host` header names.

use s3s::S3Result;

/// Virtual-host addressing under one base domain: `bucket.domain[:port]` names a
/// bucket; the domain itself, an IP address or any other host name is path-style.
#[derive(Clone)]
pub(crate) struct VirtualHosts {
    domain: String,
}

impl VirtualHosts {
    pub(crate) fn new(domain: &str) -> Option<Self> {
        let d = domain.trim_matches('.').to_ascii_lowercase();
        let ok = !d.is_empty()
            && d.split('.').all(|l| {
                !l.is_empty() && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
            });
        ok.then_some(Self { domain: d })
    }

    /// The bucket a `Host` header names, if any.
    pub(crate) fn bucket_of(&self, host: &str) -> Option<String> {
        let name = match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|c| c.is_ascii_digit()) => h,
            _ => host,
        };
        let name = name.to_ascii_lowercase();
        let bucket = name.strip_suffix(self.domain.as_str())?.strip_suffix('.')?;
        (!bucket.is_empty()).then(|| bucket.to_owned())
    }
}

impl s3s::host::S3Host for VirtualHosts {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<s3s::host::VirtualHost<'a>> {
        let vh = s3s::host::VirtualHost::new(self.domain.as_str());
        Ok(match self.bucket_of(host) {
            Some(b) => vh.with_bucket(b),
            None => vh,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::VirtualHosts;

    #[test]
    fn virtual_hosts_name_buckets_only_under_the_domain() {
        let v = VirtualHosts::new("s3.example.com").unwrap();
        assert_eq!(
            v.bucket_of("photos.s3.example.com").as_deref(),
            Some("photos")
        );
        assert_eq!(
            v.bucket_of("Photos.S3.Example.com:9000").as_deref(),
            Some("photos")
        );
        assert_eq!(v.bucket_of("a.b.s3.example.com").as_deref(), Some("a.b"));
        assert_eq!(v.bucket_of("s3.example.com:9000"), None);
        assert_eq!(v.bucket_of("127.0.0.1:9000"), None);
        assert_eq!(v.bucket_of("localhost"), None);
        assert_eq!(v.bucket_of("evils3.example.com"), None);
        assert!(VirtualHosts::new("bad domain").is_none());
    }
}
