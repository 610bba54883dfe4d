//! `crowsnest scan`: a one-shot scan, printed as a table or as JSON, with the age of the advisory
//! data per ecosystem. A scan that finds no data for some ecosystem of the image syncs that
//! ecosystem's OSV export first (unless `--offline`) and matches again; when the data still cannot
//! be had it exits 2, naming the commands that load it.

use std::process::ExitCode;
use std::time::Duration;

use crowsnest::config::{AdvisoryArgs, AdvisorySyncArgs, DatabaseArgs};
use crowsnest::domain::{AdvisoryData, SourceName, Timestamp};
use crowsnest::jobs::advisory_sync::{self, SyncResult};
use crowsnest::jobs::coverage::{self, Coverage};
use crowsnest::jobs::engine::ScanResult;
use crowsnest::scanner::advisories::ecosystem;
use crowsnest::store::{self, DatabaseUrl, Pool};

use super::scan_json::ScanOutput;

/// `crowsnest scan`'s arguments.
#[derive(clap::Args, Debug)]
pub struct ScanArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    #[command(flatten)]
    pub advisories: AdvisoryArgs,
    #[command(flatten)]
    pub sync: AdvisorySyncArgs,
    /// The image reference.
    pub reference: String,
    /// Plain HTTP to the registry (a trusted local network only).
    #[arg(long)]
    pub insecure: bool,
    /// Registry user (with --password), for basic or token-service auth.
    #[arg(long, env = "CROWSNEST_REGISTRY_USERNAME")]
    pub username: Option<String>,
    #[arg(long, env = "CROWSNEST_REGISTRY_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// table or json.
    #[arg(long, default_value = "table")]
    pub format: OutputFormat,
    /// Exit 1 when a finding has at least this severity (Low, Medium, High, Critical).
    #[arg(long)]
    pub fail_on: Option<String>,
    /// The connected registry the image belongs to (its resource id): the active exemptions
    /// that reach the image there apply, and exempt findings do not count toward --fail-on.
    #[arg(long, env = "CROWSNEST_SCAN_REGISTRY_ID")]
    pub registry_id: Option<String>,
    /// Never sync missing advisory data first: a scan without it exits 2.
    #[arg(long, env = "CROWSNEST_SCAN_OFFLINE")]
    pub offline: bool,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

/// How a scan ends: its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanVerdict {
    /// 0: no finding reaches `--fail-on`, and every ecosystem had data.
    Passed,
    /// 1: a finding reaches `--fail-on`.
    Failed,
    /// 2: some ecosystem of the image had no advisory data, so part of it was not assessed.
    NoAdvisoryData,
}

impl ScanVerdict {
    pub fn exit_code(self) -> ExitCode {
        match self {
            Self::Passed => ExitCode::SUCCESS,
            Self::Failed => ExitCode::from(1),
            Self::NoAdvisoryData => ExitCode::from(2),
        }
    }
}

/// Per scanned image, the advisory data it was matched against.
pub fn advisory_coverage(
    pool: &Pool,
    result: &ScanResult,
    max_age: Duration,
) -> anyhow::Result<Vec<Coverage>> {
    let now = Timestamp::now();
    Ok(store::run_blocking(pool, |c| {
        result
            .images
            .iter()
            .map(|image| coverage::of_inventory(c, &image.inventory, now, max_age))
            .collect::<Result<Vec<_>, _>>()
    })?)
}

/// The ecosystems of the scanned images that had no advisory data at all, sorted: what a sync
/// must load before the verdict can be trusted.
pub fn missing_advisory_data(coverage: &[Coverage]) -> Vec<String> {
    let mut missing: Vec<String> = coverage
        .iter()
        .flat_map(Coverage::missing)
        .map(str::to_owned)
        .collect();
    missing.sort_unstable();
    missing.dedup();
    missing
}

/// The families (OSV export names: `Debian` for `Debian:12`) of these ecosystems, once each.
fn families(ecosystems: &[String]) -> Vec<&str> {
    let mut families: Vec<&str> = ecosystems.iter().map(|e| ecosystem::base(e)).collect();
    families.sort_unstable();
    families.dedup();
    families
}

/// What to tell someone whose database lacks these ecosystems: which, and the commands that
/// load each family's OSV export.
fn how_to_load(missing: &[String]) -> String {
    let mut text = format!(
        "no advisory data for {}: those packages were not assessed. Load it with:",
        missing.join(", ")
    );
    for family in families(missing) {
        text.push_str(&format!(
            "\n  crowsnest advisories sync osv:{family}\n  crowsnest advisories import https://osv-vulnerabilities.storage.googleapis.com/{}/all.zip",
            family.replace(' ', "%20")
        ));
    }
    text
}

/// Syncs the OSV export of each family that has no data (as a scanner fetches its database on
/// first use); says on stderr what it does and what failed. True when any sync succeeded.
fn sync_missing(
    runtime: &tokio::runtime::Runtime,
    pool: &Pool,
    settings: &advisory_sync::SyncSettings,
    missing: &[String],
) -> bool {
    let names: Vec<SourceName> = families(missing)
        .into_iter()
        .map(|f| SourceName::Osv(f.to_owned()))
        .collect();
    eprintln!(
        "no advisory data for {}: syncing {} first",
        missing.join(", "),
        names
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    match runtime.block_on(advisory_sync::sync_sources(pool, settings, &names)) {
        Ok(reports) => {
            for report in reports.iter().filter(|r| r.result == SyncResult::Failed) {
                eprintln!(
                    "warning: {}: {}",
                    report.source,
                    report.error.as_deref().unwrap_or("failed")
                );
            }
            reports.iter().any(|r| r.result != SyncResult::Failed)
        }
        Err(e) => {
            eprintln!("warning: cannot sync advisory data: {e}");
            false
        }
    }
}

/// One line per image: each ecosystem's package count and how old its advisory data is.
fn data_age_line(coverage: &Coverage, now: Timestamp) -> String {
    let parts: Vec<String> = coverage
        .ecosystems
        .iter()
        .map(|c| {
            let state = match (c.advisories, c.synced_at.as_deref()) {
                (AdvisoryData::Loaded, Some(at)) => {
                    let age = chrono::DateTime::parse_from_rfc3339(at)
                        .map(|t| coverage::age(Timestamp::from_datetime(t.to_utc()), now))
                        .unwrap_or_else(|_| at.to_owned());
                    format!("loaded {age} ago{}", if c.stale { " (stale)" } else { "" })
                }
                _ => "no data".to_owned(),
            };
            format!("{} ({} packages) {state}", c.ecosystem, c.packages)
        })
        .collect();
    if parts.is_empty() {
        "  advisory data: no package needs any".to_owned()
    } else {
        format!("  advisory data: {}", parts.join("; "))
    }
}

/// What a scan reads: an image on disk, or one in a registry.
enum Target {
    Local(crowsnest::scanner::local::LocalRef),
    Remote(
        crowsnest::scanner::registry::ImageReference,
        crowsnest::scanner::registry::RegistryClient,
    ),
}

/// Which exemption of the connected registry `registry_id` exempts each match (per image).
fn exemptions_of(
    pool: &Pool,
    registry_id: &str,
    target: &Target,
    result: &ScanResult,
) -> anyhow::Result<Vec<Vec<Option<String>>>> {
    use crowsnest::domain::{Scope, azure_os_version};
    let Ok(Scope::Registry(id)) = Scope::parse(registry_id) else {
        anyhow::bail!(
            "--registry-id {registry_id:?}: give a registry's resource id, subscriptions/{{id}}/resourceGroups/{{name}}/providers/Microsoft.ContainerRegistry/registries/{{name}}"
        );
    };
    // An image read from disk has no repository: only exemptions above repositories reach it.
    let repository = match target {
        Target::Remote(reference, _) => reference.repository.clone(),
        Target::Local(_) => String::new(),
    };
    store::run_blocking(pool, |c| {
        let registry = store::registries::find(c, &id)?.ok_or(diesel::result::Error::NotFound)?;
        result
            .images
            .iter()
            .map(|image| {
                let os_version = image
                    .inventory
                    .os
                    .as_ref()
                    .and_then(|os| azure_os_version(&os.id, os.version_id.as_deref()));
                crowsnest::jobs::exemptions::weigh_matches(
                    c,
                    &registry,
                    &repository,
                    image.manifest_digest.as_str(),
                    os_version.as_deref(),
                    &image.report.matches,
                )
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .map_err(|e| anyhow::anyhow!("--registry-id {registry_id}: {e} (is the registry connected?)"))
}

/// Runs a one-shot scan and says how it ends.
pub fn scan_command(args: &ScanArgs) -> anyhow::Result<ScanVerdict> {
    use crowsnest::domain::{RegistryCredentials, Severity};
    use crowsnest::jobs::engine::{Engine, scan, scan_local};
    use crowsnest::scanner::registry::{ClientConfig, ImageReference, RegistryClient};

    crowsnest::telemetry::init();
    let ScanArgs {
        db,
        advisories,
        reference,
        format,
        ..
    } = args;
    let threshold = args
        .fail_on
        .as_deref()
        .map(|s| {
            Severity::parse(s).ok_or_else(|| {
                anyhow::anyhow!("--fail-on {s:?}: use Low, Medium, High or Critical")
            })
        })
        .transpose()?;
    let local = crowsnest::scanner::local::LocalRef::parse(reference);
    let credentials = match (args.username.clone(), args.password.clone()) {
        (Some(username), Some(password)) => Some(RegistryCredentials::Basic { username, password }),
        (None, None) => None,
        _ => anyhow::bail!("--username and --password go together"),
    };
    let url = DatabaseUrl::parse(&db.database_url)?;
    let pool = store::connect(&url, 4)?;
    store::migrate(&pool)?;
    let engine = Engine::new(pool.clone());
    let runtime = tokio::runtime::Runtime::new()?;
    let target = match local {
        Some(local) => Target::Local(local),
        None => {
            let reference = ImageReference::parse(reference)?;
            let config = ClientConfig {
                insecure: args.insecure,
                credentials,
                ..ClientConfig::default()
            };
            let client = RegistryClient::new(&reference.registry, config)?;
            Target::Remote(reference, client)
        }
    };
    // A second run (after a sync) reuses the stored inventory: nothing is pulled twice.
    let run_scan = || -> anyhow::Result<ScanResult> {
        match &target {
            Target::Local(local) => runtime.block_on(scan_local(&engine, local.clone())),
            Target::Remote(reference, client) => runtime.block_on(scan(&engine, client, reference)),
        }
        .map_err(|e| anyhow::anyhow!("{} ({})", e, e.code()))
    };
    let mut result = run_scan()?;
    let mut coverage = advisory_coverage(&pool, &result, advisories.advisory_max_age)?;
    let mut missing = missing_advisory_data(&coverage);
    if !missing.is_empty() && !args.offline {
        let settings = args.sync.settings()?;
        if sync_missing(&runtime, &pool, &settings, &missing) {
            result = run_scan()?;
            coverage = advisory_coverage(&pool, &result, advisories.advisory_max_age)?;
            missing = missing_advisory_data(&coverage);
        }
    }
    // Per image, per match: the exemption that exempts it.
    let exempt: Vec<Vec<Option<String>>> = match &args.registry_id {
        None => result
            .images
            .iter()
            .map(|i| vec![None; i.report.matches.len()])
            .collect(),
        Some(id) => exemptions_of(&pool, id, &target, &result)?,
    };
    let failing = |s: Severity| threshold.is_some_and(|t| s >= t);
    let fails = result
        .images
        .iter()
        .zip(&exempt)
        .flat_map(|(i, exempt)| i.report.matches.iter().zip(exempt))
        .any(|(m, exempt)| exempt.is_none() && failing(m.severity));
    match format {
        OutputFormat::Json => {
            let out = ScanOutput::new(reference, &result, &coverage, &exempt);
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        OutputFormat::Table => {
            let now = Timestamp::now();
            for ((image, coverage), exempt) in result.images.iter().zip(&coverage).zip(&exempt) {
                let os = image
                    .inventory
                    .os
                    .as_ref()
                    .map(|o| format!("{} {}", o.id, o.version_id.as_deref().unwrap_or("")))
                    .unwrap_or_else(|| "unknown OS".to_owned());
                println!(
                    "{} {} ({}): {} packages, {} findings{}",
                    image.manifest_digest,
                    image.platform,
                    os.trim(),
                    image.inventory.packages.len(),
                    image.report.matches.len(),
                    if image.reused {
                        " (inventory reused)"
                    } else {
                        ""
                    }
                );
                println!("{}", data_age_line(coverage, now));
                let mut matches: Vec<_> = image.report.matches.iter().zip(exempt).collect();
                matches.sort_by(|(a, _), (b, _)| {
                    b.severity
                        .cmp(&a.severity)
                        .then_with(|| a.advisory_id.cmp(&b.advisory_id))
                });
                if !matches.is_empty() {
                    println!(
                        "  {:<8} {:<20} {:<16} {:<28} {:<24} FIXED",
                        "SEVERITY", "ADVISORY", "ECOSYSTEM", "PACKAGE", "INSTALLED"
                    );
                }
                for (m, exempt) in matches {
                    println!(
                        "  {:<8} {:<20} {:<16} {:<28} {:<24} {}{}",
                        m.severity.as_str(),
                        m.advisory_id,
                        m.ecosystem,
                        m.package_name,
                        m.installed_version,
                        m.fixed_version.as_deref().unwrap_or("(no fix)"),
                        exempt
                            .as_deref()
                            .map(|by| format!("  EXEMPT by {by}"))
                            .unwrap_or_default()
                    );
                }
                for u in &image.report.unknown {
                    println!("  UNKNOWN  {} {}: {}", u.package, u.version, u.reason);
                }
                if let Some(os) = &image.report.unsupported_os {
                    println!("  NotApplicable: {os}");
                }
            }
            for s in &result.skipped {
                println!("{}: skipped ({})", s.platform, s.reason);
            }
        }
    }
    if !missing.is_empty() {
        eprintln!("error: {}", how_to_load(&missing));
        return Ok(ScanVerdict::NoAdvisoryData);
    }
    Ok(if fails {
        ScanVerdict::Failed
    } else {
        ScanVerdict::Passed
    })
}
