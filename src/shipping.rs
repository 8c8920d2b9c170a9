//! Shipping settings: per plane whether sealed segments leave the node, to which target,
//! and how many shipped segments stay local; the S3 endpoint and its credentials.

use crate::config_error::ConfigError;
use client::{S3Client, S3Settings};
use serde::Deserialize;
use shipper::{PlanePolicy, ShipStep, ShipperConfig, Target, TargetSettings};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Shipped segments kept locally per plane and shard by default.
pub const DEFAULT_RETAIN: u64 = 6;

/// `[data_plane]` / `[meta_plane]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaneSection {
    pub ship: Option<bool>,
    pub target: Option<String>,
    pub retain: Option<u64>,
}

/// `[shipper]`: how often the pipeline looks at the catalog and how it backs off.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShipperSection {
    pub rescan_ms: Option<u64>,
    pub backoff_base_ms: Option<u64>,
    pub backoff_cap_ms: Option<u64>,
}

/// `[s3_target]`: the endpoint `s3://` targets live on.
#[derive(Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Section {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    /// A TOML file with `access_key` and `secret_key` (keep it mode 0600).
    pub credentials_file: Option<PathBuf>,
    /// PEM certificates trusted for an https:// endpoint besides the Mozilla roots.
    pub ca_file: Option<PathBuf>,
    pub timeout_s: Option<u64>,
}

impl std::fmt::Debug for S3Section {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Section")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("credentials_file", &self.credentials_file)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    access_key: String,
    secret_key: String,
}

/// One plane's resolved policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaneShipping {
    /// `Some` when the plane ships.
    pub target: Option<String>,
    pub retain: u64,
}

/// Resolved shipping settings.
#[derive(Debug, Clone)]
pub struct ShipSettings {
    pub data: PlaneShipping,
    pub catalog: PlaneShipping,
    pub s3: Option<S3Section>,
    /// The catalog is read at least this often.
    pub rescan: Duration,
    /// First and largest wait after a failure (full jitter in between).
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Crash tests: `INGOT_SHIP_CRASH_AFTER` (car-uploaded, index-uploaded,
    /// marked-shipped, retired) aborts the process right after that step.
    pub crash_after: Option<ShipStep>,
}

fn plane(name: &str, p: &PlaneSection) -> Result<PlaneShipping, ConfigError> {
    let target = p.target.clone().filter(|t| !t.is_empty());
    let ship = p.ship.unwrap_or(false);
    if ship && target.is_none() {
        return Err(ConfigError::Invalid(format!(
            "[{name}] ship = true needs a target (file:///path or s3://bucket/prefix)"
        )));
    }
    Ok(PlaneShipping {
        target: target.filter(|_| ship),
        retain: p.retain.unwrap_or(DEFAULT_RETAIN),
    })
}

impl ShipSettings {
    pub fn resolve(
        data: &PlaneSection,
        catalog: &PlaneSection,
        s3: Option<&S3Section>,
        pipeline: &ShipperSection,
    ) -> Result<Self, ConfigError> {
        let d = ShipperConfig::default();
        let ms = |name: &str, v: Option<u64>, default: Duration| match v {
            Some(0) => Err(ConfigError::Invalid(format!(
                "[shipper] {name} must be at least 1"
            ))),
            Some(v) => Ok(Duration::from_millis(v)),
            None => Ok(default),
        };
        let backoff_base = ms("backoff_base_ms", pipeline.backoff_base_ms, d.backoff_base)?;
        let backoff_cap = ms("backoff_cap_ms", pipeline.backoff_cap_ms, d.backoff_cap)?;
        if backoff_cap < backoff_base {
            return Err(ConfigError::Invalid(
                "[shipper] backoff_cap_ms must be at least backoff_base_ms".into(),
            ));
        }
        let crash_after = match std::env::var("INGOT_SHIP_CRASH_AFTER") {
            Ok(s) if !s.is_empty() => Some(s.parse().map_err(ConfigError::Invalid)?),
            _ => None,
        };
        Ok(Self {
            data: plane("data_plane", data)?,
            catalog: plane("meta_plane", catalog)?,
            s3: s3.cloned(),
            rescan: ms("rescan_ms", pipeline.rescan_ms, d.rescan)?,
            backoff_base,
            backoff_cap,
            crash_after,
        })
    }

    /// Whether any plane ships.
    pub fn ships(&self) -> bool {
        self.data.target.is_some() || self.catalog.target.is_some()
    }

    /// What targets need: the S3 client when `[s3_target]` names an endpoint.
    /// Credentials: the section's keys, else its `credentials_file`, else
    /// `INGOT_SHIP_ACCESS_KEY`/`INGOT_SHIP_SECRET_KEY`, else `AWS_ACCESS_KEY_ID`/
    /// `AWS_SECRET_ACCESS_KEY`.
    pub fn target_settings(&self) -> Result<TargetSettings, ConfigError> {
        let Some(s3) = self.s3.as_ref().filter(|s| s.endpoint.is_some()) else {
            return Ok(TargetSettings::default());
        };
        let (access_key, secret_key) = s3_credentials(s3)?;
        let client = S3Client::new(S3Settings {
            endpoint: s3.endpoint.clone().unwrap_or_default(),
            ca_file: s3.ca_file.clone(),
            region: s3.region.clone().unwrap_or_else(|| "us-east-1".into()),
            access_key,
            secret_key,
            timeout: Some(Duration::from_secs(s3.timeout_s.unwrap_or(60).max(1))),
        })
        .map_err(|e| ConfigError::Invalid(format!("[s3_target] {e}")))?;
        Ok(TargetSettings {
            s3: Some(Arc::new(client)),
        })
    }

    /// The pipeline's configuration (targets parsed and checked).
    pub fn shipper_config(&self, targets: &TargetSettings) -> Result<ShipperConfig, ConfigError> {
        let policy = |name: &str, p: &PlaneShipping| -> Result<PlanePolicy, ConfigError> {
            let target = match &p.target {
                Some(url) => Some(
                    Target::from_url(url, targets)
                        .map_err(|e| ConfigError::Invalid(format!("[{name}] {e}")))?,
                ),
                None => None,
            };
            Ok(PlanePolicy {
                target,
                retain: p.retain,
            })
        };
        Ok(ShipperConfig {
            data: policy("data_plane", &self.data)?,
            catalog: policy("meta_plane", &self.catalog)?,
            rescan: self.rescan,
            backoff_base: self.backoff_base,
            backoff_cap: self.backoff_cap,
            crash_after: self.crash_after,
        })
    }
}

fn s3_credentials(s3: &S3Section) -> Result<(String, String), ConfigError> {
    if let (Some(a), Some(s)) = (&s3.access_key, &s3.secret_key) {
        return Ok((a.clone(), s.clone()));
    }
    if let Some(path) = &s3.credentials_file {
        return read_credentials(path);
    }
    for (a, s) in [
        ("INGOT_SHIP_ACCESS_KEY", "INGOT_SHIP_SECRET_KEY"),
        ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
    ] {
        if let (Ok(a), Ok(s)) = (std::env::var(a), std::env::var(s)) {
            return Ok((a, s));
        }
    }
    Err(ConfigError::Invalid(
        "[s3_target] has no credentials: set access_key and secret_key, credentials_file, \
         or INGOT_SHIP_ACCESS_KEY and INGOT_SHIP_SECRET_KEY"
            .into(),
    ))
}

fn read_credentials(path: &Path) -> Result<(String, String), ConfigError> {
    let text = crate::secret_file::read_private(path)?;
    let c: CredentialsFile = toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })?;
    Ok((c.access_key, c.secret_key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn a_shipping_plane_needs_a_target_and_a_quiet_plane_ignores_it() {
        let on = PlaneSection {
            ship: Some(true),
            target: None,
            retain: None,
        };
        assert!(plane("data_plane", &on).is_err());
        let off = PlaneSection {
            ship: Some(false),
            target: Some("file:///cold".into()),
            retain: Some(2),
        };
        let p = plane("data_plane", &off).unwrap();
        assert_eq!(p.target, None);
        assert_eq!(p.retain, 2);
    }

    #[test]
    fn s3_targets_need_an_endpoint_and_credentials_come_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("creds.toml");
        std::fs::write(&creds, "access_key = \"AK\"\nsecret_key = \"SK\"\n").unwrap();
        std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
        let data = PlaneSection {
            ship: Some(true),
            target: Some("s3://cold/node-a".into()),
            retain: Some(0),
        };
        let no_s3 = ShipSettings::resolve(
            &data,
            &PlaneSection::default(),
            None,
            &ShipperSection::default(),
        )
        .unwrap();
        let t = no_s3.target_settings().unwrap();
        assert!(no_s3.shipper_config(&t).is_err());
        let s3 = S3Section {
            endpoint: Some("http://127.0.0.1:9100".into()),
            credentials_file: Some(creds.clone()),
            ..S3Section::default()
        };
        let with = ShipSettings::resolve(
            &data,
            &PlaneSection::default(),
            Some(&s3),
            &ShipperSection::default(),
        )
        .unwrap();
        for mode in [0o640, 0o604] {
            std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = with.target_settings().unwrap_err();
            assert!(matches!(e, ConfigError::SecretFile(_)), "{e}");
        }
        std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
        let t = with.target_settings().unwrap();
        let c = with.shipper_config(&t).unwrap();
        assert!(matches!(c.data.target, Some(Target::S3(_))));
        assert!(c.catalog.target.is_none());
        assert_eq!(c.data.retain, 0);
        assert!(!format!("{s3:?}").contains("SK"));
    }
}
