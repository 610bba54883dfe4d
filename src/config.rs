//! Settings: read from flags or the environment (every flag has an env name), resolved once at start-up.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::api::body_deadline::BodyDeadline;
use crate::jobs::advisory_sync::{FeedLocations, OSV_BASE, SourceSelection, SyncSettings};
use crate::jobs::exemptions::ExemptionSettings;
use crate::jobs::queue::QueueSettings;
use crate::jobs::rescans::RescanSettings;
use crate::jobs::running_images::ReportLimits;
use crate::store::DatabaseUrl;

#[derive(clap::Args, Debug, Clone)]
pub struct DatabaseArgs {
    /// PostgreSQL URL (postgres://…) or SQLite file (a path or sqlite://PATH).
    #[arg(long, env = "DATABASE_URL", default_value = "crowsnest.db")]
    pub database_url: String,
    /// Connections kept in the pool.
    #[arg(long, env = "CROWSNEST_DB_POOL_SIZE", default_value_t = 8)]
    pub db_pool_size: u32,
}

#[derive(clap::Args, Debug, Clone)]
pub struct AuthArgs {
    /// HS256 secret for bearer tokens. Without it (and on SQLite) a secret is generated once and kept
    /// beside the database file.
    #[arg(long, env = "CROWSNEST_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Required `iss` claim.
    #[arg(long, env = "CROWSNEST_JWT_ISSUER", default_value = "crowsnest")]
    pub jwt_issuer: String,
    /// Required `aud` claim.
    #[arg(long, env = "CROWSNEST_JWT_AUDIENCE", default_value = "crowsnest")]
    pub jwt_audience: String,
    /// JWKS of an OIDC issuer; enables RS256 and ES256 tokens.
    #[arg(long, env = "CROWSNEST_JWKS_URL")]
    pub jwks_url: Option<url::Url>,
    /// Shortest wait between two JWKS fetches triggered by unknown key ids.
    #[arg(long, env = "CROWSNEST_JWKS_MIN_REFRESH", default_value = "10s", value_parser = humantime::parse_duration)]
    pub jwks_min_refresh: std::time::Duration,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address the HTTP server listens on.
    #[arg(long, env = "CROWSNEST_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Base of the URLs the service hands out (nextLink, webhook URLs); default http://BIND.
    #[arg(long, env = "CROWSNEST_PUBLIC_URL")]
    pub public_url: Option<url::Url>,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "CROWSNEST_HTTP_WORKERS")]
    pub http_workers: Option<usize>,
    /// How long a request body may take to arrive, plus one second for every
    /// CROWSNEST_REQUEST_BODY_MIN_RATE bytes received; a slower body is answered 408.
    #[arg(long, env = "CROWSNEST_REQUEST_BODY_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_body_timeout: Duration,
    /// Bytes of a request body that earn it one more second (see CROWSNEST_REQUEST_BODY_TIMEOUT).
    #[arg(long, env = "CROWSNEST_REQUEST_BODY_MIN_RATE", default_value_t = 16384)]
    pub request_body_min_rate: u64,
    #[command(flatten)]
    pub jobs: JobArgs,
}

/// How old advisory data may be; shared by `serve` and `scan`.
#[derive(clap::Args, Debug, Clone)]
pub struct AdvisoryArgs {
    /// Advisory data older than this no longer makes an image without findings Healthy
    /// (NotApplicable, `AdvisoriesStale`).
    #[arg(long, env = "CROWSNEST_ADVISORY_MAX_AGE", default_value = "7days", value_parser = humantime::parse_duration)]
    pub advisory_max_age: Duration,
}

#[derive(clap::Args, Debug, Clone)]
pub struct JobArgs {
    /// Scan workers in this process (default: one per core; 0 for an API-only node).
    #[arg(long, env = "CROWSNEST_WORKERS")]
    pub workers: Option<usize>,
    /// How often an image is re-assessed against the newest advisories.
    #[arg(long, env = "CROWSNEST_RESCAN_INTERVAL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub rescan_interval: Duration,
    /// Images pulled (or pushed) within this window are re-assessed; running images always are.
    #[arg(long, env = "CROWSNEST_RESCAN_PULLED_WITHIN", default_value = "30days", value_parser = humantime::parse_duration)]
    pub rescan_pulled_within: Duration,
    /// How long a worker's lease on a scan lasts (renewed while it runs).
    #[arg(long, env = "CROWSNEST_SCAN_LEASE", default_value = "60s", value_parser = humantime::parse_duration)]
    pub scan_lease: Duration,
    /// Attempts before a scan fails for good.
    #[arg(long, env = "CROWSNEST_SCAN_MAX_ATTEMPTS", default_value_t = 5)]
    pub scan_max_attempts: u32,
    /// Delay before the first retry of a failed scan; doubled for each further attempt.
    #[arg(long, env = "CROWSNEST_SCAN_RETRY_DELAY", default_value = "5s", value_parser = humantime::parse_duration)]
    pub scan_retry_delay: Duration,
    /// How often idle workers look for scans queued by other processes.
    #[arg(long, env = "CROWSNEST_QUEUE_POLL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub queue_poll: Duration,
    /// The part of this process's workers one subscription's running scans may hold (counted
    /// across processes); above 1 when several processes share the queue.
    #[arg(
        long,
        env = "CROWSNEST_SUBSCRIPTION_WORKER_SHARE",
        default_value_t = 0.5
    )]
    pub subscription_worker_share: f64,
    /// How often exemptions past their `expiresOn` are expired (their findings count again).
    #[arg(long, env = "CROWSNEST_EXEMPTION_SWEEP", default_value = "15s", value_parser = humantime::parse_duration)]
    pub exemption_sweep: Duration,
    /// Pods one running-images report may list (larger reports are refused with 413).
    #[arg(long, env = "CROWSNEST_REPORT_MAX_PODS", default_value_t = ReportLimits::default().max_pods)]
    pub report_max_pods: usize,
    /// Containers one running-images report may list (larger reports are refused with 413).
    #[arg(long, env = "CROWSNEST_REPORT_MAX_CONTAINERS", default_value_t = ReportLimits::default().max_containers)]
    pub report_max_containers: usize,
    /// Never-scanned images one running-images report queues scans for; the rest wait.
    #[arg(long, env = "CROWSNEST_REPORT_MAX_NEW_SCANS", default_value_t = ReportLimits::default().max_new_scans)]
    pub report_max_new_scans: usize,
    #[command(flatten)]
    pub advisories: AdvisoryArgs,
    #[command(flatten)]
    pub advisory_sync: AdvisorySyncArgs,
}

/// Which advisory sources are kept current, from where, and how often.
#[derive(clap::Args, Debug, Clone)]
pub struct AdvisorySyncArgs {
    /// Sources to sync, comma-separated: `auto` (the OSV ecosystems of the stored images'
    /// packages), `osv:<Ecosystem>`, a zip URL, a directory, `kev`, `epss`, `debian-tracker`, `nvd`.
    #[arg(long, env = "CROWSNEST_ADVISORY_SOURCES", default_value = "auto")]
    pub advisory_sources: String,
    /// How often OSV sources are synced by `serve`; `off` turns background syncing off.
    #[arg(long, env = "CROWSNEST_ADVISORY_SYNC_INTERVAL", default_value = "1h")]
    pub advisory_sync_interval: String,
    /// How often the feeds (kev, epss, debian-tracker, nvd) are synced.
    #[arg(long, env = "CROWSNEST_FEED_SYNC_INTERVAL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub feed_sync_interval: Duration,
    /// Delay before a failed sync is retried; doubled for each further failure, up to 6 hours.
    #[arg(long, env = "CROWSNEST_ADVISORY_SYNC_RETRY", default_value = "1m", value_parser = humantime::parse_duration)]
    pub advisory_sync_retry: Duration,
    /// A download gives up when connecting, or waiting for the next bytes, takes longer.
    #[arg(long, env = "CROWSNEST_ADVISORY_SYNC_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub advisory_sync_timeout: Duration,
    /// Base URL of OSV's export (`<base>/<ECOSYSTEM>/all.zip`), for mirrors and air-gapped sites.
    #[arg(long, env = "CROWSNEST_OSV_BASE_URL", default_value = OSV_BASE)]
    pub osv_base_url: url::Url,
    /// CISA's Known Exploited Vulnerabilities catalog (JSON): a URL or a path.
    #[arg(long, env = "CROWSNEST_KEV_URL", default_value = FeedLocations::KEV)]
    pub kev_url: String,
    /// FIRST's EPSS scores (gzip CSV): a URL or a path.
    #[arg(long, env = "CROWSNEST_EPSS_URL", default_value = FeedLocations::EPSS)]
    pub epss_url: String,
    /// Debian's security tracker export (JSON): a URL or a path.
    #[arg(long, env = "CROWSNEST_DEBIAN_TRACKER_URL", default_value = FeedLocations::DEBIAN_TRACKER)]
    pub debian_tracker_url: String,
    /// The NVD's CVE data (JSON 2.0 feed): a URL or a path.
    #[arg(long, env = "CROWSNEST_NVD_URL", default_value = FeedLocations::NVD)]
    pub nvd_url: String,
}

impl AdvisorySyncArgs {
    pub fn settings(&self) -> anyhow::Result<SyncSettings> {
        let sources = SourceSelection::parse(&self.advisory_sources)
            .map_err(|e| anyhow::anyhow!("CROWSNEST_ADVISORY_SOURCES: {e}"))?;
        let defaults = SyncSettings::default();
        let (background, interval) = match self.advisory_sync_interval.trim() {
            "off" => (false, defaults.interval),
            text => {
                let interval = humantime::parse_duration(text).map_err(|e| {
                    anyhow::anyhow!("CROWSNEST_ADVISORY_SYNC_INTERVAL must be a duration (1h, 30m) or `off`: {e}")
                })?;
                (true, interval)
            }
        };
        if interval < Duration::from_secs(1) || self.feed_sync_interval < Duration::from_secs(1) {
            bail!(
                "CROWSNEST_ADVISORY_SYNC_INTERVAL and CROWSNEST_FEED_SYNC_INTERVAL must be at least 1s"
            );
        }
        if self.advisory_sync_timeout < Duration::from_millis(100) {
            bail!("CROWSNEST_ADVISORY_SYNC_TIMEOUT must be at least 100ms");
        }
        Ok(SyncSettings {
            sources,
            osv_base: self.osv_base_url.clone(),
            feeds: FeedLocations {
                kev: self.kev_url.clone(),
                epss: self.epss_url.clone(),
                debian_tracker: self.debian_tracker_url.clone(),
                nvd: self.nvd_url.clone(),
            },
            background,
            interval,
            feed_interval: self.feed_sync_interval,
            retry: self.advisory_sync_retry,
            timeout: self.advisory_sync_timeout,
            lease: defaults.lease,
        })
    }
}

/// How the background jobs run.
#[derive(Debug, Clone, Default)]
pub struct JobSettings {
    pub queue: QueueSettings,
    pub rescans: RescanSettings,
    pub running_images: ReportLimits,
    pub advisory_sync: SyncSettings,
    pub exemptions: ExemptionSettings,
}

impl JobSettings {
    pub fn from_args(args: &JobArgs) -> anyhow::Result<Self> {
        if args.rescan_interval < Duration::from_secs(1) {
            bail!("CROWSNEST_RESCAN_INTERVAL must be at least 1s");
        }
        if args.scan_lease < Duration::from_secs(1) {
            bail!("CROWSNEST_SCAN_LEASE must be at least 1s");
        }
        if args.advisories.advisory_max_age < Duration::from_secs(1) {
            bail!("CROWSNEST_ADVISORY_MAX_AGE must be at least 1s");
        }
        if args.exemption_sweep < Duration::from_millis(100)
            || args.exemption_sweep > Duration::from_secs(60)
        {
            bail!(
                "CROWSNEST_EXEMPTION_SWEEP must be from 100ms to 60s (expiry takes effect within a minute)"
            );
        }
        if args.scan_max_attempts == 0 {
            bail!("CROWSNEST_SCAN_MAX_ATTEMPTS must be at least 1");
        }
        if !(args.subscription_worker_share > 0.0 && args.subscription_worker_share <= 1000.0) {
            bail!("CROWSNEST_SUBSCRIPTION_WORKER_SHARE must be above 0 and at most 1000");
        }
        let defaults = QueueSettings::default();
        Ok(Self {
            queue: QueueSettings {
                workers: args.workers.unwrap_or(defaults.workers),
                lease: args.scan_lease,
                max_attempts: args.scan_max_attempts,
                retry_delay: args.scan_retry_delay,
                poll: args.queue_poll,
                subscription_share: args.subscription_worker_share,
                advisory_max_age: args.advisories.advisory_max_age,
            },
            rescans: RescanSettings {
                interval: args.rescan_interval,
                active_within: args.rescan_pulled_within,
                advisory_max_age: args.advisories.advisory_max_age,
            },
            running_images: ReportLimits {
                max_pods: args.report_max_pods,
                max_containers: args.report_max_containers,
                max_new_scans: args.report_max_new_scans,
            },
            advisory_sync: args.advisory_sync.settings()?,
            exemptions: ExemptionSettings {
                sweep: args.exemption_sweep,
            },
        })
    }
}

/// A secret that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub hs256_secret: Option<Secret>,
    pub issuer: String,
    pub audience: String,
    pub jwks_url: Option<url::Url>,
    pub jwks_min_refresh: std::time::Duration,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database: DatabaseUrl,
    pub db_pool_size: u32,
    pub bind: String,
    pub public_url: Option<url::Url>,
    pub http_workers: Option<usize>,
    /// How long request bodies may take to arrive.
    pub request_body: BodyDeadline,
    pub auth: AuthSettings,
    pub jobs: JobSettings,
}

impl Settings {
    pub fn from_args(
        db: &DatabaseArgs,
        auth: &AuthArgs,
        serve: &ServeArgs,
    ) -> anyhow::Result<Self> {
        let database = DatabaseUrl::parse(&db.database_url)?;
        let auth = AuthSettings::resolve(auth, &database)?;
        if serve.request_body_timeout < Duration::from_secs(1) || serve.request_body_min_rate == 0 {
            bail!(
                "CROWSNEST_REQUEST_BODY_TIMEOUT must be at least 1s and CROWSNEST_REQUEST_BODY_MIN_RATE at least 1"
            );
        }
        Ok(Self {
            database,
            db_pool_size: db.db_pool_size,
            bind: serve.bind.clone(),
            public_url: serve.public_url.clone(),
            http_workers: serve.http_workers,
            request_body: BodyDeadline {
                timeout: serve.request_body_timeout,
                min_rate: serve.request_body_min_rate,
            },
            auth,
            jobs: JobSettings::from_args(&serve.jobs)?,
        })
    }
}

impl AuthSettings {
    /// The explicit secret, else (on SQLite) the one kept beside the database, else JWKS alone.
    pub fn resolve(args: &AuthArgs, database: &DatabaseUrl) -> anyhow::Result<Self> {
        let hs256_secret = match (&args.jwt_secret, database) {
            (Some(secret), _) => {
                if secret.len() < 32 {
                    bail!("CROWSNEST_JWT_SECRET is too short: use at least 32 characters");
                }
                Some(Secret::new(secret.as_bytes()))
            }
            (None, DatabaseUrl::Sqlite(path)) => Some(load_or_create_secret(&secret_path(path))?),
            (None, DatabaseUrl::Postgres(_)) if args.jwks_url.is_some() => None,
            (None, DatabaseUrl::Postgres(_)) => {
                bail!(
                    "set CROWSNEST_JWT_SECRET (at least 32 characters) or CROWSNEST_JWKS_URL when using PostgreSQL"
                )
            }
        };
        Ok(Self {
            hs256_secret,
            issuer: args.jwt_issuer.clone(),
            audience: args.jwt_audience.clone(),
            jwks_url: args.jwks_url.clone(),
            jwks_min_refresh: args.jwks_min_refresh,
        })
    }
}

/// `crowsnest.db` → `crowsnest.db.jwt-secret`, in the same directory.
pub fn secret_path(database: &Path) -> PathBuf {
    let mut name = database
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "crowsnest.db".into());
    name.push(".jwt-secret");
    database.with_file_name(name)
}

fn load_or_create_secret(path: &Path) -> anyhow::Result<Secret> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().len() >= 32 => return Ok(Secret::new(text.trim().as_bytes())),
        Ok(_) => bail!(
            "{} is shorter than 32 characters; delete it to have a new one generated",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot read the JWT secret at {}", path.display()));
        }
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("no randomness for the JWT secret: {e}"))?;
    let secret = hex::encode(bytes);
    // create_new: when `serve` and `token` race on a fresh directory, the loser reads the winner's file.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(secret.as_bytes())
                .with_context(|| format!("cannot write the JWT secret to {}", path.display()))?;
            Ok(Secret::new(secret.into_bytes()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create_secret(path),
        Err(e) => {
            Err(e).with_context(|| format!("cannot create the JWT secret file {}", path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_secret_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let db = DatabaseUrl::Sqlite(dir.path().join("c.db"));
        let args = AuthArgs {
            jwt_secret: None,
            jwt_issuer: "i".into(),
            jwt_audience: "a".into(),
            jwks_url: None,
            jwks_min_refresh: std::time::Duration::from_secs(10),
        };
        let first = AuthSettings::resolve(&args, &db)
            .unwrap()
            .hs256_secret
            .unwrap();
        let second = AuthSettings::resolve(&args, &db)
            .unwrap()
            .hs256_secret
            .unwrap();
        assert_eq!(first, second);
        let mode = std::fs::metadata(dir.path().join("c.db.jwt-secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(format!("{first:?}"), "Secret(***)");
    }

    fn sync_settings(args: &[&str]) -> anyhow::Result<SyncSettings> {
        #[derive(clap::Parser)]
        struct Command {
            #[command(flatten)]
            sync: AdvisorySyncArgs,
        }
        use clap::Parser;
        let parsed =
            Command::try_parse_from(std::iter::once("crowsnest").chain(args.iter().copied()))?;
        parsed.sync.settings()
    }

    #[test]
    fn advisory_sync_defaults_and_off() {
        let defaults = sync_settings(&[]).unwrap();
        assert!(defaults.background && defaults.sources.auto);
        assert_eq!(defaults.interval, Duration::from_secs(3600));
        assert_eq!(defaults.feed_interval, Duration::from_secs(24 * 3600));
        assert_eq!(
            defaults.osv_base.as_str(),
            "https://osv-vulnerabilities.storage.googleapis.com/"
        );
        let off = sync_settings(&[
            "--advisory-sync-interval",
            "off",
            "--advisory-sources",
            "auto,kev",
        ])
        .unwrap();
        assert!(!off.background);
        assert_eq!(
            off.sources.named,
            [crate::domain::SourceName::Feed(crate::domain::Feed::Kev)]
        );
        assert!(sync_settings(&["--advisory-sync-interval", "soon"]).is_err());
        assert!(sync_settings(&["--advisory-sources", "osv:"]).is_err());
    }

    #[test]
    fn postgres_needs_a_key_source() {
        let db = DatabaseUrl::parse("postgres://x@127.0.0.1/db").unwrap();
        let mut args = AuthArgs {
            jwt_secret: None,
            jwt_issuer: "i".into(),
            jwt_audience: "a".into(),
            jwks_url: None,
            jwks_min_refresh: std::time::Duration::from_secs(10),
        };
        assert!(AuthSettings::resolve(&args, &db).is_err());
        args.jwt_secret = Some("short".into());
        assert!(AuthSettings::resolve(&args, &db).is_err());
        args.jwt_secret = Some("x".repeat(32));
        assert!(
            AuthSettings::resolve(&args, &db)
                .unwrap()
                .hs256_secret
                .is_some()
        );
    }
}
