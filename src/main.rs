use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crowsnest::api::auth::{SubscriptionsClaim, mint_hs256};
use crowsnest::config::{AuthArgs, AuthSettings, DatabaseArgs, ServeArgs, Settings};
use crowsnest::domain::{Role, SubscriptionId};
use crowsnest::startup::Application;
use crowsnest::store::{self, DatabaseUrl};

/// Vulnerability assessment for container registries, with an Azure Sub-Assessments compatible API.
#[derive(Parser)]
#[command(name = "crowsnest", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply migrations, then serve the API.
    Serve {
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        auth: AuthArgs,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Apply pending database migrations and exit.
    Migrate {
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Print the OpenAPI document.
    Openapi,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
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
