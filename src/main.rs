use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crowsnest::api::auth::{SubscriptionsClaim, mint_hs256};
use crowsnest::config::{
    AdvisorySyncArgs, AuthArgs, AuthSettings, DatabaseArgs, ServeArgs, Settings,
};
use crowsnest::domain::{Role, SubscriptionId};
use crowsnest::jobs::advisory_sources::Source;
use crowsnest::jobs::import_advisories::{self, ImportSummary};
use crowsnest::startup::Application;
use crowsnest::store::{self, DatabaseUrl};

use cli::registry::RegistryCommand;
use cli::scan::{ScanArgs, scan_command};
use cli::vex::VexCommand;

mod cli;

/// Vulnerability assessment for container registries, with an Azure Sub-Assessments compatible API.
#[derive(Parser)]
#[command(name = "crowsnest", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run: the settings' size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Apply migrations, then serve the API.
    Serve {
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        auth: AuthArgs,
        #[command(flatten)]
        serve: Box<ServeArgs>,
    },
    /// Apply pending database migrations and exit.
    Migrate {
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// Scan one image (`host[:port]/repo:tag` or `…@sha256:…`) and print its OS, packages and
    /// findings, with the age of the advisory data per ecosystem. Exit status: 0 clean, 1 findings
    /// at or above --fail-on, 2 an error or an ecosystem of the image without advisory data.
    Scan(Box<ScanArgs>),
    /// Manage the advisory database.
    Advisories {
        #[command(subcommand)]
        command: AdvisoriesCommand,
    },
    /// Manage connected registries.
    Registry {
        #[command(subcommand)]
        command: RegistryCommand,
    },
    /// Import VEX documents (OpenVEX 0.2).
    Vex {
        #[command(subcommand)]
        command: VexCommand,
    },
    /// Mint an HS256 bearer token with the configured (or generated) secret; prints only the token.
    Token {
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        auth: AuthArgs,
        /// A subscription id, or `*` for all.
        #[arg(long)]
        subscription: String,
        /// Reader, Contributor or Admin.
        #[arg(long)]
        role: Role,
        /// Lifetime, e.g. 30m, 1h, 7d.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// The token's `sub` claim.
        #[arg(long, default_value = "crowsnest-cli")]
        subject: String,
    },
}

#[derive(Subcommand)]
enum AdvisoriesCommand {
    /// Import OSV records from JSON files, directories of them, zips (osv.dev's all.zip) or http(s) URLs.
    Import {
        #[command(flatten)]
        db: DatabaseArgs,
        /// Files, directories, zips or URLs.
        #[arg(required = true)]
        sources: Vec<String>,
    },
    /// Sync advisory sources now (default: those CROWSNEST_ADVISORY_SOURCES names): osv:<Ecosystem>,
    /// a zip URL, a directory, kev, epss, debian-tracker, nvd.
    Sync {
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        sync: AdvisorySyncArgs,
        /// Sources to sync instead of the configured ones.
        sources: Vec<String>,
    },
    /// Show each advisory source: last success, records, newest record, last error, next run.
    Status {
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        sync: AdvisorySyncArgs,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Scan(args) = cli.command {
        return match scan_command(&args) {
            Ok(verdict) => verdict.exit_code(),
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { db, auth, serve } => {
            crowsnest::telemetry::init();
            let settings = Settings::from_args(&db, &auth, &serve)?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async move {
                let app = Application::build(settings).await?;
                app.run_until_stopped().await?;
                Ok(())
            })
        }
        Command::Migrate { db } => {
            crowsnest::telemetry::init();
            let url = DatabaseUrl::parse(&db.database_url)?;
            let pool = store::connect(&url, 1)?;
            let applied = store::migrate(&pool)?;
            println!(
                "{} migration(s) applied to {}",
                applied.len(),
                url.redacted()
            );
            Ok(())
        }
        Command::Advisories {
            command: AdvisoriesCommand::Import { db, sources },
        } => {
            crowsnest::telemetry::init();
            let url = DatabaseUrl::parse(&db.database_url)?;
            let pool = store::connect(&url, 2)?;
            store::migrate(&pool)?;
            let sources: Vec<Source> = sources.iter().map(|s| Source::parse(s)).collect();
            let prepared =
                tokio::runtime::Runtime::new()?.block_on(import_advisories::prepare(&sources))?;
            let progress = progress_reporter();
            // The images it queues are picked up by the server's workers from the shared database.
            let summary =
                import_advisories::import_files(&pool, &prepared.files, &|n| progress(n))?;
            print_summary(&summary);
            Ok(())
        }
        Command::Advisories {
            command: AdvisoriesCommand::Sync { db, sync, sources },
        } => {
            crowsnest::telemetry::init();
            cli::advisories::sync(&db, &sync, &sources)
        }
        Command::Advisories {
            command: AdvisoriesCommand::Status { db, sync },
        } => cli::advisories::status(&db, &sync),
        Command::Registry { command } => cli::registry::run(command),
        Command::Vex { command } => cli::vex::run(command),
        Command::Scan { .. } => unreachable!("handled in main"),
        Command::Openapi => {
            print!("{}", crowsnest::api::openapi_json());
            Ok(())
        }
        Command::Token {
            db,
            auth,
            subscription,
            role,
            ttl,
            subject,
        } => {
            let url = DatabaseUrl::parse(&db.database_url)?;
            let settings = AuthSettings::resolve(&auth, &url)?;
            let secret = settings
                .hs256_secret
                .clone()
                .ok_or_else(|| anyhow::anyhow!("no HS256 secret: set CROWSNEST_JWT_SECRET"))?;
            let subscriptions = if subscription == "*" {
                SubscriptionsClaim::One("*".to_owned())
            } else {
                SubscriptionsClaim::Many(vec![
                    SubscriptionId::parse(&subscription)?.as_str().to_owned(),
                ])
            };
            println!(
                "{}",
                mint_hs256(&secret, &settings, &subject, subscriptions, role, ttl)?
            );
            Ok(())
        }
    }
}

/// A live counter on a terminal, a line every 5,000 records otherwise.
fn progress_reporter() -> Box<dyn Fn(u64) + Sync> {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {pos} records read ({per_sec}) {elapsed}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        Box::new(move |n| bar.set_position(n))
    } else {
        let last = std::sync::atomic::AtomicU64::new(0);
        Box::new(move |n| {
            if n / 5000 > last.load(std::sync::atomic::Ordering::Relaxed) / 5000 {
                eprintln!("{n} records read");
            }
            last.store(n, std::sync::atomic::Ordering::Relaxed);
        })
    }
}

fn print_summary(s: &ImportSummary) {
    println!(
        "imported {}: {} added, {} updated, {} unchanged, {} withdrawn, {} rejected ({:.2} s)",
        s.sources.join(", "),
        s.added,
        s.updated,
        s.unchanged,
        s.withdrawn,
        s.rejected.len(),
        s.seconds
    );
    if !s.newly_covered.is_empty() {
        println!(
            "  advisory data loaded for the first time: {}",
            s.newly_covered.join(", ")
        );
    }
    cli::advisories::print_queued_and_rejected(s.images_queued, &s.rejected);
    for i in &s.ignored {
        println!("  ignored {}× {}", i.count, i.reason);
    }
    if !s.skipped_files.is_empty() {
        // Their advisories never match: say so where it is seen, naming a few.
        let named: Vec<&str> = s.skipped_files.iter().take(5).map(String::as_str).collect();
        eprintln!(
            "warning: skipped {} files that are not OSV records (.json, .yaml or .yml), so their \
             advisories were not imported: {}{}",
            s.skipped_files.len(),
            named.join(", "),
            if s.skipped_files.len() > named.len() {
                ", …"
            } else {
                ""
            }
        );
    }
}
