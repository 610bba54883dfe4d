//! `crowsnest scan`: a one-shot scan, printed as a table or as JSON.

use crowsnest::config::DatabaseArgs;
use crowsnest::store::{self, DatabaseUrl};

use super::scan_json::ScanOutput;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

/// Runs a one-shot scan; Ok(true) when a finding reaches `fail_on`.
pub fn scan_command(
    db: &DatabaseArgs,
    reference: &str,
    insecure: bool,
    username: Option<String>,
    password: Option<String>,
    format: OutputFormat,
    fail_on: Option<&str>,
) -> anyhow::Result<bool> {
    use crowsnest::domain::{RegistryCredentials, Severity};
    use crowsnest::jobs::engine::{Engine, scan, scan_local};
    use crowsnest::scanner::registry::{ClientConfig, ImageReference, RegistryClient};

    crowsnest::telemetry::init();
    let threshold = fail_on
        .map(|s| {
            Severity::parse(s).ok_or_else(|| {
                anyhow::anyhow!("--fail-on {s:?}: use Low, Medium, High or Critical")
            })
        })
        .transpose()?;
    let local = crowsnest::scanner::local::LocalRef::parse(reference);
    let credentials = match (username, password) {
        (Some(username), Some(password)) => Some(RegistryCredentials::Basic { username, password }),
        (None, None) => None,
        _ => anyhow::bail!("--username and --password go together"),
    };
    let url = DatabaseUrl::parse(&db.database_url)?;
    let pool = store::connect(&url, 4)?;
    store::migrate(&pool)?;
    let engine = Engine::new(pool);
    let runtime = tokio::runtime::Runtime::new()?;
    let result = match local {
        Some(local) => runtime.block_on(scan_local(&engine, local)),
        None => {
            let reference = ImageReference::parse(reference)?;
            let config = ClientConfig {
                insecure,
                credentials,
                ..ClientConfig::default()
            };
            let client = RegistryClient::new(&reference.registry, config)?;
            runtime.block_on(scan(&engine, &client, &reference))
        }
    }
    .map_err(|e| anyhow::anyhow!("{} ({})", e, e.code()))?;
    let failing = |s: Severity| threshold.is_some_and(|t| s >= t);
    let fails = result
        .images
        .iter()
        .flat_map(|i| &i.report.matches)
        .any(|m| failing(m.severity));
    match format {
        OutputFormat::Json => {
            let out = ScanOutput::new(reference, &result);
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        OutputFormat::Table => {
            for image in &result.images {
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
                let mut matches: Vec<_> = image.report.matches.iter().collect();
                matches.sort_by(|a, b| {
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
                for m in matches {
                    println!(
                        "  {:<8} {:<20} {:<16} {:<28} {:<24} {}",
                        m.severity.as_str(),
                        m.advisory_id,
                        m.ecosystem,
                        m.package_name,
                        m.installed_version,
                        m.fixed_version.as_deref().unwrap_or("(no fix)")
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
    Ok(fails)
}
