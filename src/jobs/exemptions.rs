//! Exemptions at work: which active exemption each present finding is exempt by, kept in
//! `findings.exempted_by` whenever exemptions change or expire and whenever a scan writes
//! findings, and the health of the images whose verdict that changes.
//!
//! Decisions:
//! - A finding several active exemptions match is exempt by the earliest created (ties by id), so
//!   its status names one exemption, and the same one whichever was written last.
//! - An exempt finding is listed (`NotApplicable`, cause `Exempt`) and counts toward nothing that
//!   judges health: image health, the registry assessment, the summary.
//! - Expiry is a sweep ([`spawn_sweeper`], every `CROWSNEST_EXEMPTION_SWEEP`, 15 s by
//!   default): an exemption past its `expiresOn` becomes `Expired` (kept, never deleted), its
//!   findings are weighed again and the change is in its history, by the actor `crowsnest`.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use diesel::QueryResult;
use tokio_util::sync::CancellationToken;

use crate::domain::{
    Criteria, EcosystemCoverage, ExemptionCategory, ExemptionScope, ExemptionState, FindingFacts,
    FindingPlace, Severity, Timestamp, cve_ids, health_cause, verdict,
};
use crate::scanner::advisories::matcher::Match;
use crate::scanner::versions::Scheme;
use crate::store::exemptions::{Candidate, CandidateScope, ExemptionRow, HistoryRow};
use crate::store::{self, AnyConnection, Pool};

/// Who expiry is recorded as.
pub const SWEEP_ACTOR: &str = "crowsnest";

/// Findings weighed per batch.
const BATCH: i64 = 2000;

/// An active exemption, parsed.
#[derive(Debug, Clone)]
pub struct Active {
    pub id: String,
    pub scope: ExemptionScope,
    pub criteria: Criteria,
}

/// What an exemption says, as the API or a VEX import writes it.
#[derive(Debug, Clone)]
pub struct ExemptionSpec {
    pub criteria: Criteria,
    pub category: ExemptionCategory,
    pub justification: String,
    pub expires_at: Option<i64>,
    pub display_name: Option<String>,
}

/// The stored key of the exemption `name` at `scope`: its resource id in lower case.
pub fn exemption_key(scope: &ExemptionScope, name: &str) -> String {
    format!(
        "{}/providers/microsoft.security/exemptions/{name}",
        scope.id()
    )
    .to_ascii_lowercase()
}

fn history(
    row: &ExemptionRow,
    action: &str,
    actor: &str,
    at: i64,
    before: Option<&ExemptionRow>,
    after: Option<&ExemptionRow>,
) -> HistoryRow {
    HistoryRow {
        id: store::new_ordered_id(),
        exemption_id: row.id.clone(),
        subscription_id: row.subscription_id.clone(),
        action: action.to_owned(),
        actor: actor.to_owned(),
        at,
        before: before.and_then(|b| serde_json::to_string(b).ok()),
        after: after.and_then(|a| serde_json::to_string(a).ok()),
    }
}

/// Creates or replaces the exemption `name` at `scope` (active again) under the subscription's
/// exclusive exemption lock, recording the change in its history; returns the row before (none: created) and after. Weighing the findings is the
/// caller's next step ([`apply`]), once for all it writes.
pub fn write(
    conn: &mut AnyConnection,
    scope: &ExemptionScope,
    name: &str,
    spec: &ExemptionSpec,
    actor: &str,
    now: i64,
) -> QueryResult<(Option<ExemptionRow>, ExemptionRow)> {
    store::lock_exemptions(conn, &[scope.subscription().as_str()], true)?;
    let id = exemption_key(scope, name);
    let before = store::exemptions::get(conn, &id)?;
    let row = ExemptionRow {
        id: id.clone(),
        resource_id: before.as_ref().map_or_else(
            || {
                format!(
                    "/{}/providers/Microsoft.Security/exemptions/{name}",
                    scope.id()
                )
            },
            |b| b.resource_id.clone(),
        ),
        subscription_id: scope.subscription().as_str().to_owned(),
        scope: scope.id(),
        name: before
            .as_ref()
            .map_or_else(|| name.to_owned(), |b| b.name.clone()),
        criteria: serde_json::to_string(&spec.criteria).unwrap_or_default(),
        category: spec.category.as_str().to_owned(),
        justification: spec.justification.clone(),
        display_name: spec.display_name.clone(),
        expires_at: spec.expires_at,
        state: ExemptionState::Active.as_str().to_owned(),
        created_by: before
            .as_ref()
            .map_or_else(|| actor.to_owned(), |b| b.created_by.clone()),
        created_at: before.as_ref().map_or(now, |b| b.created_at),
        updated_by: actor.to_owned(),
        updated_at: now,
    };
    store::exemptions::put(conn, &row)?;
    let action = if before.is_some() {
        "Updated"
    } else {
        "Created"
    };
    store::exemptions::record(
        conn,
        &history(&row, action, actor, now, before.as_ref(), Some(&row)),
    )?;
    Ok((before, row))
}

/// Deletes the exemption `id` at `scope` under the subscription's exclusive exemption lock,
/// recording it in its history (which stays); returns what was deleted.
/// Weighing the findings is the caller's next step ([`apply`]).
pub fn remove(
    conn: &mut AnyConnection,
    scope: &ExemptionScope,
    id: &str,
    actor: &str,
    now: i64,
) -> QueryResult<Option<ExemptionRow>> {
    store::lock_exemptions(conn, &[scope.subscription().as_str()], true)?;
    let Some(before) = store::exemptions::get(conn, id)? else {
        return Ok(None);
    };
    store::exemptions::delete(conn, id)?;
    store::exemptions::record(
        conn,
        &history(&before, "Deleted", actor, now, Some(&before), None),
    )?;
    Ok(Some(before))
}

/// The subscription's active exemptions, earliest created first. Rows are validated when
/// written, so one that no longer parses (never expected) is left out rather than failing scans.
pub fn active_of(conn: &mut AnyConnection, subscription: &str) -> QueryResult<Vec<Active>> {
    Ok(store::exemptions::active(conn, subscription)?
        .into_iter()
        .filter_map(|row| parsed(&row))
        .collect())
}

fn parsed(row: &ExemptionRow) -> Option<Active> {
    Some(Active {
        id: row.id.clone(),
        scope: ExemptionScope::parse(&row.scope).ok()?,
        criteria: serde_json::from_str(&row.criteria).ok()?,
    })
}

/// The ecosystem's version order; `None` when it has none or cannot read a version.
fn compare_versions(ecosystem: &str, a: &str, b: &str) -> Option<Ordering> {
    Scheme::for_ecosystem(ecosystem)?.compare(a, b).ok()
}

/// What of a candidate finding exemptions are weighed against; `aliases` are its CVE ids.
fn facts<'a>(candidate: &'a Candidate, aliases: &'a [String]) -> FindingFacts<'a> {
    FindingFacts {
        place: FindingPlace {
            subscription: &candidate.subscription_id,
            resource_group: &candidate.resource_group,
            registry_name: &candidate.registry_name,
            repository: &candidate.repository,
            digest: &candidate.image_digest,
        },
        advisory_id: &candidate.advisory_id,
        aliases,
        package_name: &candidate.package_name,
        ecosystem: &candidate.ecosystem,
        installed_version: &candidate.installed_version,
        severity: Severity::parse(&candidate.severity).unwrap_or_default(),
        fix_available: candidate.fixed_version.is_some(),
        os_version: candidate.os_version.as_deref(),
    }
}

impl Active {
    fn matches(&self, finding: &FindingFacts<'_>) -> bool {
        self.scope.covers(&finding.place) && self.criteria.matches(finding, &compare_versions)
    }
}

/// Which active exemption (its id) exempts each match of a scan made outside the service
/// (`crowsnest scan`): the image is `digest` in `repository` of the connected registry `registry`.
pub fn weigh_matches(
    conn: &mut AnyConnection,
    registry: &crate::store::registries::RegistryRow,
    repository: &str,
    digest: &str,
    os_version: Option<&str>,
    matches: &[Match],
) -> QueryResult<Vec<Option<String>>> {
    let active = active_of(conn, &registry.subscription_id)?;
    Ok(matches
        .iter()
        .map(|m| {
            let aliases: Vec<String> = m.cves.iter().map(|l| l.title.clone()).collect();
            let finding = FindingFacts {
                place: FindingPlace {
                    subscription: &registry.subscription_id,
                    resource_group: &registry.resource_group,
                    registry_name: &registry.name,
                    repository,
                    digest,
                },
                advisory_id: &m.advisory_id,
                aliases: &aliases,
                package_name: &m.package_name,
                ecosystem: &m.ecosystem,
                installed_version: &m.installed_version,
                severity: m.severity,
                fix_available: m.fixed_version.is_some(),
                os_version,
            };
            active
                .iter()
                .find(|a| a.matches(&finding))
                .map(|a| format!("/{}", a.id))
        })
        .collect())
}

/// The findings an exemption's scope reaches, as the candidates' query narrows them (the rest
/// of the scope is checked by [`ExemptionScope::covers`]).
pub fn candidate_scope(scope: &ExemptionScope) -> CandidateScope {
    let subscription = scope.subscription().as_str().to_owned();
    match scope {
        ExemptionScope::Subscription(_)
        | ExemptionScope::ResourceGroup(..)
        | ExemptionScope::Registry(_) => CandidateScope {
            subscription,
            ..CandidateScope::default()
        },
        ExemptionScope::Repository(_, repository) => CandidateScope {
            subscription,
            repository: Some(repository.as_str().to_owned()),
            ..CandidateScope::default()
        },
        ExemptionScope::Image(_, repository, digest) => CandidateScope {
            subscription,
            repository: Some(repository.as_str().to_owned()),
            image_digest: Some(digest.as_str().to_owned()),
            ..CandidateScope::default()
        },
    }
}

/// What weighing findings again changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reweighed {
    /// Findings that became exempt, stopped being exempt, or changed exemption.
    pub changed: usize,
    /// Findings the exemption `matching` names matches (whichever exempts them).
    pub matched: usize,
    /// The images of the changed findings.
    pub images: BTreeSet<String>,
    /// The subscription's active exemptions they were weighed against.
    pub exemptions: usize,
}

/// Weighs the present findings in `scope` against the subscription's active exemptions and
/// stores each one's exemption where it changed. `matching`: an exemption whose matches to
/// count. Run it in the transaction that changed the exemptions or the findings.
pub fn reweigh(
    conn: &mut AnyConnection,
    scope: &CandidateScope,
    matching: Option<&str>,
) -> QueryResult<Reweighed> {
    let active = active_of(conn, &scope.subscription)?;
    reweigh_against(conn, scope, &active, matching)
}

/// The active exemptions of the subscriptions a batch of scans stores findings in, read once
/// under their shared lock (`store::lock_exemptions`).
#[derive(Debug, Default)]
pub struct ActiveExemptions(HashMap<String, Vec<Active>>);

impl ActiveExemptions {
    /// Takes the subscriptions' exemption locks (shared) and reads their active exemptions.
    pub fn hold(conn: &mut AnyConnection, subscriptions: &[String]) -> QueryResult<Self> {
        store::lock_exemptions(conn, subscriptions, false)?;
        let mut by_subscription: HashMap<String, Vec<Active>> = HashMap::new();
        for row in store::exemptions::active_in(conn, subscriptions)? {
            if let Some(active) = parsed(&row) {
                by_subscription
                    .entry(row.subscription_id.clone())
                    .or_default()
                    .push(active);
            }
        }
        Ok(Self(by_subscription))
    }

    fn of(&self, subscription: &str) -> &[Active] {
        self.0.get(subscription).map_or(&[], Vec::as_slice)
    }
}

/// [`reweigh`] for the findings a scan has just merged into an image. Without an active
/// exemption in the subscription there is nothing to do: every removal and expiry weighs its
/// findings again in its own transaction, so no finding keeps a mark without an active exemption
/// behind it, and merged rows are written unmarked. The usual case costs nothing more.
pub fn reweigh_image(
    conn: &mut AnyConnection,
    exemptions: &ActiveExemptions,
    subscription: &str,
    image_id: &str,
) -> QueryResult<Reweighed> {
    let active = exemptions.of(subscription);
    if active.is_empty() {
        return Ok(Reweighed::default());
    }
    let scope = CandidateScope {
        subscription: subscription.to_owned(),
        image_id: Some(image_id.to_owned()),
        ..CandidateScope::default()
    };
    reweigh_against(conn, &scope, active, None)
}

fn reweigh_against(
    conn: &mut AnyConnection,
    scope: &CandidateScope,
    active: &[Active],
    matching: Option<&str>,
) -> QueryResult<Reweighed> {
    let mut out = Reweighed {
        exemptions: active.len(),
        ..Reweighed::default()
    };
    let target = matching.and_then(|id| active.iter().find(|a| a.id == id));
    let mut after = String::new();
    loop {
        let batch = store::exemptions::candidates(conn, scope, &after, BATCH)?;
        let Some(last) = batch.last() else {
            return Ok(out);
        };
        after = last.id.clone();
        // (exemption or none) → findings that now have it.
        let mut moves: std::collections::BTreeMap<Option<&str>, Vec<&str>> = Default::default();
        for candidate in &batch {
            let aliases = cve_ids(&candidate.cves);
            let finding = facts(candidate, &aliases);
            let now_by = active
                .iter()
                .find(|a| a.matches(&finding))
                .map(|a| a.id.as_str());
            if target.is_some_and(|t| t.matches(&finding)) {
                out.matched += 1;
            }
            if now_by != candidate.exempted_by.as_deref() {
                moves.entry(now_by).or_default().push(&candidate.id);
                out.images.insert(candidate.image_id.clone());
                out.changed += 1;
            }
        }
        for (exemption, ids) in moves {
            store::exemptions::set_exempted_by(conn, &ids, exemption)?;
        }
    }
}

/// Decides again the stored health of assessed images whose findings' exemptions changed: the
/// verdict of their last assessment, counting only the findings no exemption matches.
pub fn refresh_health(conn: &mut AnyConnection, image_ids: &BTreeSet<String>) -> QueryResult<()> {
    let ids: Vec<String> = image_ids.iter().cloned().collect();
    let images = store::images::by_ids(conn, &ids)?;
    for image in images.values() {
        if image.scanned_at.is_none() {
            continue;
        }
        let active = store::exemptions::unexempt_count(conn, &image.id)?;
        let coverage: Vec<EcosystemCoverage> = image
            .coverage
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or_default();
        let unsupported = image.health_reason.as_deref() == Some(health_cause::UNSUPPORTED_OS);
        let (health, reason) = verdict(
            usize::try_from(active).unwrap_or(usize::MAX),
            unsupported,
            &coverage,
            usize::try_from(image.unreadable_files).unwrap_or(0),
        );
        if health.as_str() != image.health || reason != image.health_reason.as_deref() {
            store::images::set_health(conn, &image.id, health.as_str(), reason)?;
        }
    }
    Ok(())
}

/// Re-weighs everything `scope` reaches and refreshes the health that changes with it; returns
/// how many findings `matching` now exempts.
pub fn apply(
    conn: &mut AnyConnection,
    scope: &ExemptionScope,
    matching: Option<&str>,
) -> QueryResult<usize> {
    let reweighed = reweigh(conn, &candidate_scope(scope), matching)?;
    refresh_health(conn, &reweighed.images)?;
    Ok(reweighed.matched)
}

/// Expires the active exemptions whose `expiresOn` is at or before `now`: each shows `Expired`,
/// its findings are weighed again, and its history records it. Returns how many expired.
pub fn expire_due(conn: &mut AnyConnection, now: i64) -> QueryResult<usize> {
    let due = store::exemptions::due_to_expire(conn, now)?;
    let subscriptions: Vec<&str> = due.iter().map(|d| d.subscription_id.as_str()).collect();
    store::lock_exemptions(conn, &subscriptions, true)?;
    let mut expired = 0;
    for before in &due {
        let after = ExemptionRow {
            state: ExemptionState::Expired.as_str().to_owned(),
            ..before.clone()
        };
        if !store::exemptions::expire(conn, &before.id)? {
            continue;
        }
        store::exemptions::record(
            conn,
            &history(
                before,
                "Expired",
                SWEEP_ACTOR,
                now,
                Some(before),
                Some(&after),
            ),
        )?;
        expired += 1;
        if let Ok(scope) = ExemptionScope::parse(&before.scope) {
            apply(conn, &scope, None)?;
        }
    }
    Ok(expired)
}

/// How the expiry sweep runs.
#[derive(Debug, Clone)]
pub struct ExemptionSettings {
    /// Time between sweeps.
    pub sweep: Duration,
}

impl Default for ExemptionSettings {
    fn default() -> Self {
        Self {
            sweep: Duration::from_secs(15),
        }
    }
}

/// Expires due exemptions every `settings.sweep` until `stop`.
pub fn spawn_sweeper(pool: Pool, settings: ExemptionSettings, stop: CancellationToken) {
    let every = settings.sweep;
    tokio::spawn(async move {
        while !stop.is_cancelled() {
            let swept = store::run(&pool, |c| {
                store::transaction(c, |c| expire_due(c, Timestamp::now().micros()))
            })
            .await;
            match swept {
                Ok(0) => {}
                Ok(expired) => tracing::info!(expired, "exemptions expired"),
                Err(e) => tracing::warn!(error = %e, "cannot expire the exemptions due"),
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = stop.cancelled() => {}
            }
        }
    });
}
