//! `crowsnest vex import FILE --scope SCOPE`: imports an OpenVEX 0.2 document at a scope, as
//! `POST {scope}/providers/Microsoft.Security/vex` does, and prints what it did as JSON.

use std::path::PathBuf;

use anyhow::Context as _;

use crowsnest::config::DatabaseArgs;
use crowsnest::domain::{ExemptionScope, Timestamp, VexDocument};
use crowsnest::store::{self, DatabaseUrl};

#[derive(clap::Subcommand)]
pub enum VexCommand {
    /// Import an OpenVEX 0.2 document: not_affected and fixed statements become Mitigated
    /// exemptions at the scope; every statement is kept. Importing it again changes nothing.
    Import(ImportArgs),
}

#[derive(clap::Args)]
pub struct ImportArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    /// Where its statements apply: a subscription, resource group or registry id,
    /// `{registryId}/repositories/{repository}` or `…/images/{digest}`.
    #[arg(long)]
    scope: String,
    /// Who the exemptions' history names.
    #[arg(long, default_value = "crowsnest-cli")]
    actor: String,
    /// The document (JSON).
    file: PathBuf,
}

pub fn run(command: VexCommand) -> anyhow::Result<()> {
    let VexCommand::Import(args) = command;
    let scope = ExemptionScope::parse(&args.scope).map_err(|e| anyhow::anyhow!("--scope: {e}"))?;
    let text = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let json: serde_json::Value = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not JSON", args.file.display()))?;
    let document =
        VexDocument::parse(&json).map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let url = DatabaseUrl::parse(&args.db.database_url)?;
    let pool = store::connect(&url, 1)?;
    store::migrate(&pool)?;
    let imported = store::run_blocking(&pool, |c| {
        store::transaction(c, |c| {
            crowsnest::jobs::vex::import(
                c,
                &scope,
                &document,
                &args.actor,
                Timestamp::now().micros(),
            )
        })
    })?;
    println!("{}", serde_json::to_string_pretty(&imported)?);
    Ok(())
}
