//! `crowsnest registry connect`: connects a registry with a webhook secret given by the operator
//! and writes the registry's notification configuration, so a deployment (docker-compose.yml) sets
//! up both ends before either runs.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crowsnest::config::DatabaseArgs;
use crowsnest::domain::{LoginServer, RegistryId, RegistryName, ResourceGroupName, SubscriptionId};
use crowsnest::jobs::registries::{self, Connected, OnReconnect, RegistrySettings, WebhookSecret};
use crowsnest::store::{self, DatabaseUrl};

#[derive(clap::Subcommand)]
pub enum RegistryCommand {
    /// Connect a registry (or update the connected one) with the given webhook secret, and print
    /// or write the Docker Distribution notifications that reach Crowsnest with it.
    Connect(ConnectArgs),
}

#[derive(clap::Args)]
pub struct ConnectArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    /// The subscription the registry is connected in.
    #[arg(long)]
    subscription: String,
    /// Its resource group.
    #[arg(long)]
    resource_group: String,
    /// The registry's name in Crowsnest.
    #[arg(long)]
    name: String,
    /// `host[:port]` Crowsnest pulls the registry's images from.
    #[arg(long)]
    login_server: String,
    /// Plain HTTP to the registry (a trusted local network only).
    #[arg(long)]
    insecure: bool,
    /// What the registry sends as `Authorization: Bearer <secret>` (32 or more characters).
    #[arg(long, env = "CROWSNEST_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: String,
    /// Crowsnest's URL as the registry reaches it.
    #[arg(
        long,
        env = "CROWSNEST_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    crowsnest_url: url::Url,
    /// Write a Docker Distribution configuration to this file (mode 0600: it holds the secret):
    /// the content of --registry-config-base followed by the notifications. Without it, the
    /// notifications are printed.
    #[arg(long)]
    registry_config_out: Option<PathBuf>,
    /// The configuration the written one starts with (storage, http, …); it must have no
    /// `notifications` section.
    #[arg(long, requires = "registry_config_out")]
    registry_config_base: Option<PathBuf>,
}

pub fn run(command: RegistryCommand) -> anyhow::Result<()> {
    match command {
        RegistryCommand::Connect(args) => connect(&args),
    }
}

fn connect(args: &ConnectArgs) -> anyhow::Result<()> {
    let id = RegistryId {
        subscription: SubscriptionId::parse(&args.subscription)?,
        resource_group: ResourceGroupName::parse(&args.resource_group)?,
        name: RegistryName::parse(&args.name)?,
    };
    let login_server = LoginServer::parse(&args.login_server)?;
    let secret = WebhookSecret::chosen(&args.webhook_secret)?;
    // Read before connecting, so a wrong base changes nothing.
    let base = args
        .registry_config_base
        .as_deref()
        .map(read_base)
        .transpose()?;
    let url = DatabaseUrl::parse(&args.db.database_url)?;
    let pool = store::connect(&url, 1)?;
    store::migrate(&pool)?;
    let settings = RegistrySettings {
        login_server,
        insecure: args.insecure,
        credentials: None,
    };
    let connected =
        registries::connect_blocking(&pool, &id, settings, &secret, OnReconnect::ReplaceSecret)?;
    let webhook = crowsnest::api::webhook::url(&args.crowsnest_url, &id.to_string());
    let notifications = notifications_yaml(&id, &webhook, &args.webhook_secret);
    let verb = match connected {
        Connected::Created(_) => "connected",
        Connected::Updated(_) => "updated",
        Connected::LoginServerTaken(other) => anyhow::bail!(
            "the login server '{}' is already connected in this subscription as {}",
            other.login_server,
            RegistryId::format(&other.subscription_id, &other.resource_group, &other.name)
        ),
    };
    match &args.registry_config_out {
        Some(out) => {
            let mut config = base.unwrap_or_default();
            if !config.is_empty() && !config.ends_with('\n') {
                config.push('\n');
            }
            config.push_str(&notifications);
            write_private(out, &config)?;
            eprintln!(
                "{id} {verb}; notifications to {webhook} written to {}",
                out.display()
            );
        }
        None => {
            eprintln!("{id} {verb}; notifications to {webhook}:");
            print!("{notifications}");
        }
    }
    Ok(())
}

fn read_base(path: &Path) -> anyhow::Result<String> {
    let base =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if base.lines().any(|l| {
        l.strip_prefix("notifications")
            .is_some_and(|rest| rest.trim_start().starts_with(':'))
    }) {
        anyhow::bail!(
            "{} already has a notifications section; remove it, the written configuration adds its own",
            path.display()
        );
    }
    Ok(base)
}

/// The `notifications` section of a Docker Distribution configuration.
fn notifications_yaml(id: &RegistryId, webhook: &str, secret: &str) -> String {
    // A JSON string is a YAML double-quoted scalar.
    let quoted = |s: &str| serde_json::to_string(s).unwrap_or_default();
    format!(
        "# Notifications to Crowsnest for {id}, written by `crowsnest registry connect`.\n\
         notifications:\n  \
           events:\n    \
             includereferences: true\n  \
           endpoints:\n    \
             - name: crowsnest\n      \
               url: {url}\n      \
               headers:\n        \
                 Authorization: [{authorization}]\n      \
               timeout: 5s\n      \
               threshold: 5\n      \
               backoff: 2s\n",
        url = quoted(webhook),
        authorization = quoted(&format!("Bearer {secret}")),
    )
}

/// Writes `content` to `path`, readable by its owner only.
fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let context = || format!("cannot write {}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(context)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(context)?;
    file.write_all(content.as_bytes()).with_context(context)
}
