// Portable table definitions shared by the PostgreSQL and SQLite migrations.

diesel::table! {
    advisory_generation (id) {
        id -> Integer,
        generation -> BigInt,
        intel_generation -> BigInt,
        instance -> Text,
    }
}

diesel::table! {
    registries (id) {
        id -> Text,
        subscription_id -> Text,
        resource_group -> Text,
        name -> Text,
        login_server -> Text,
        insecure -> Bool,
        credentials -> Nullable<Text>,
        webhook_secret_sha256 -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    images (id) {
        id -> Text,
        registry_id -> Text,
        subscription_id -> Text,
        repository -> Text,
        digest -> Text,
        index_digest -> Nullable<Text>,
        platform -> Nullable<Text>,
        os -> Nullable<Text>,
        health -> Text,
        health_reason -> Nullable<Text>,
        pushed_at -> Nullable<BigInt>,
        pulled_at -> Nullable<BigInt>,
        scanned_at -> Nullable<BigInt>,
        running -> Bool,
        created_at -> BigInt,
        coverage -> Nullable<Text>,
        advisories_synced_at -> Nullable<BigInt>,
        unreadable_files -> Integer,
        media_type -> Nullable<Text>,
        os_version -> Nullable<Text>,
    }
}

diesel::table! {
    image_tags (registry_id, repository, tag) {
        registry_id -> Text,
        repository -> Text,
        tag -> Text,
        image_id -> Text,
        updated_at -> BigInt,
    }
}

diesel::table! {
    findings (id) {
        id -> Text,
        subscription_id -> Text,
        resource_group -> Text,
        registry_id -> Text,
        registry_name -> Text,
        image_id -> Text,
        repository -> Text,
        image_digest -> Text,
        advisory_id -> Text,
        package_name -> Text,
        installed_version -> Text,
        fixed_version -> Nullable<Text>,
        ecosystem -> Text,
        category -> Text,
        severity -> Text,
        severity_source -> Text,
        cvss2_base -> Nullable<Double>,
        cvss3_base -> Nullable<Double>,
        display_name -> Text,
        description -> Text,
        remediation -> Text,
        impact -> Text,
        cves -> Text,
        vendor_references -> Text,
        published_at -> Nullable<BigInt>,
        patchable -> Bool,
        layer_digest -> Nullable<Text>,
        first_seen -> BigInt,
        last_seen -> BigInt,
        resolved_at -> Nullable<BigInt>,
        fingerprint -> Text,
        severity_rank -> Integer,
        file_path -> Nullable<Text>,
        mdvm_vulnerabilities -> Integer,
        exempted_by -> Nullable<Text>,
    }
}

diesel::table! {
    running_images (subscription_id, cluster, namespace, pod, container) {
        subscription_id -> Text,
        cluster -> Text,
        namespace -> Text,
        pod -> Text,
        container -> Text,
        image -> Text,
        registry -> Nullable<Text>,
        repository -> Nullable<Text>,
        digest -> Nullable<Text>,
        reported_at -> BigInt,
    }
}

diesel::table! {
    scans (id) {
        id -> Text,
        subscription_id -> Text,
        registry_id -> Text,
        repository -> Text,
        tag -> Nullable<Text>,
        digest -> Nullable<Text>,
        triggered_by -> Text,
        status -> Text,
        attempts -> Integer,
        run_after -> BigInt,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<BigInt>,
        pending_key -> Nullable<Text>,
        idempotency_key -> Nullable<Text>,
        error_code -> Nullable<Text>,
        error_message -> Nullable<Text>,
        summary -> Nullable<Text>,
        created_at -> BigInt,
        started_at -> Nullable<BigInt>,
        finished_at -> Nullable<BigInt>,
        priority -> Integer,
    }
}

diesel::table! {
    registry_events (registry_id, event_id) {
        registry_id -> Text,
        event_id -> Text,
        received_at -> BigInt,
    }
}

diesel::table! {
    billing_records (id) {
        id -> Text,
        subscription_id -> Text,
        digest -> Text,
        registry_id -> Text,
        repository -> Text,
        scan_id -> Text,
        billed_at -> BigInt,
    }
}

diesel::table! {
    pricings (subscription_id, plan) {
        subscription_id -> Text,
        plan -> Text,
        pricing_tier -> Text,
        enablement_time -> Nullable<BigInt>,
        changed_by -> Text,
        changed_at -> BigInt,
    }
}

diesel::table! {
    exemptions (id) {
        id -> Text,
        resource_id -> Text,
        subscription_id -> Text,
        scope -> Text,
        name -> Text,
        criteria -> Text,
        category -> Text,
        justification -> Text,
        display_name -> Nullable<Text>,
        expires_at -> Nullable<BigInt>,
        state -> Text,
        created_by -> Text,
        created_at -> BigInt,
        updated_by -> Text,
        updated_at -> BigInt,
    }
}

diesel::table! {
    exemption_history (id) {
        id -> Text,
        exemption_id -> Text,
        subscription_id -> Text,
        action -> Text,
        actor -> Text,
        at -> BigInt,
        before -> Nullable<Text>,
        after -> Nullable<Text>,
    }
}

diesel::table! {
    vex_statements (id) {
        id -> Text,
        subscription_id -> Text,
        scope -> Text,
        vulnerability -> Text,
        aliases -> Text,
        product -> Text,
        image_digest -> Nullable<Text>,
        packages -> Text,
        status -> Text,
        justification -> Nullable<Text>,
        impact_statement -> Nullable<Text>,
        action_statement -> Nullable<Text>,
        stated_at -> BigInt,
        document_id -> Text,
        author -> Text,
        imported_by -> Text,
        imported_at -> BigInt,
        exemption_id -> Nullable<Text>,
    }
}

diesel::table! {
    mdvm_names (name) {
        name -> Text,
        finding_id -> Text,
        vulnerability -> Text,
    }
}

diesel::joinable!(images -> registries (registry_id));
diesel::joinable!(findings -> images (image_id));
diesel::allow_tables_to_appear_in_same_query!(
    registries,
    running_images,
    scans,
    registry_events,
    billing_records,
    pricings,
    exemptions,
    exemption_history,
    vex_statements,
    mdvm_names,
    images,
    image_tags,
    findings,
    advisories,
    affected_ranges,
    advisory_aliases,
    advisory_imports,
    inventories,
    packages,
    advisory_coverage,
    known_exploited,
    epss_scores,
    advisory_cves
);

diesel::table! {
    advisories (id) {
        id -> Text,
        modified -> BigInt,
        published -> Nullable<BigInt>,
        withdrawn -> Nullable<BigInt>,
        summary -> Text,
        severity -> Nullable<Text>,
        severity_source -> Nullable<Text>,
        cvss2_base -> Nullable<Double>,
        cvss3_base -> Nullable<Double>,
        lent_from -> Nullable<Text>,
        lent_severity -> Nullable<Text>,
        lent_severity_source -> Nullable<Text>,
        lent_cvss2_base -> Nullable<Double>,
        lent_cvss3_base -> Nullable<Double>,
        record -> Text,
        raw -> Text,
        imported_at -> BigInt,
    }
}

diesel::table! {
    affected_ranges (advisory_id, seq) {
        advisory_id -> Text,
        seq -> Integer,
        ecosystem -> Text,
        package -> Text,
        affected -> Text,
    }
}

diesel::table! {
    advisory_aliases (advisory_id, alias) {
        advisory_id -> Text,
        alias -> Text,
    }
}

diesel::table! {
    advisory_imports (id) {
        id -> Text,
        source -> Text,
        started_at -> BigInt,
        finished_at -> BigInt,
        added -> Integer,
        updated -> Integer,
        unchanged -> Integer,
        withdrawn -> Integer,
        rejected -> Integer,
    }
}

diesel::joinable!(affected_ranges -> advisories (advisory_id));
diesel::joinable!(advisory_aliases -> advisories (advisory_id));

diesel::table! {
    inventories (manifest_digest) {
        manifest_digest -> Text,
        analyzers -> Text,
        os -> Nullable<Text>,
        layers -> Integer,
        created_at -> BigInt,
        unreadable -> Nullable<Text>,
    }
}

diesel::table! {
    packages (manifest_digest, seq) {
        manifest_digest -> Text,
        seq -> Integer,
        kind -> Text,
        name -> Text,
        version -> Text,
        source_name -> Nullable<Text>,
        source_version -> Nullable<Text>,
        layer_digest -> Nullable<Text>,
        file_path -> Nullable<Text>,
        owner -> Nullable<Text>,
    }
}

diesel::joinable!(packages -> inventories (manifest_digest));

diesel::table! {
    advisory_coverage (ecosystem) {
        ecosystem -> Text,
        advisories -> BigInt,
        synced_at -> BigInt,
    }
}

diesel::table! {
    known_exploited (cve_id) {
        cve_id -> Text,
        date_added -> Text,
        due_date -> Text,
        required_action -> Text,
        known_ransomware_campaign_use -> Nullable<Text>,
    }
}

diesel::table! {
    severity_ratings (cve, source, release_name, package) {
        cve -> Text,
        source -> Text,
        release_name -> Text,
        package -> Text,
        severity -> Text,
        rating -> Text,
        cvss2_base -> Nullable<Double>,
        cvss3_base -> Nullable<Double>,
        loaded_at -> BigInt,
    }
}

diesel::table! {
    epss_scores (cve_id, load_id) {
        cve_id -> Text,
        load_id -> BigInt,
        score -> Double,
        percentile -> Double,
        score_date -> Text,
    }
}

diesel::table! {
    /// A view: each advisory's own id and its aliases (read only).
    advisory_cves (advisory_id, cve_id) {
        advisory_id -> Text,
        cve_id -> Text,
    }
}

diesel::table! {
    advisory_sources (name) {
        name -> Text,
        last_attempt_at -> Nullable<BigInt>,
        last_success_at -> Nullable<BigInt>,
        records -> BigInt,
        newest_modified -> Nullable<BigInt>,
        last_changed -> BigInt,
        last_error -> Nullable<Text>,
        next_run_at -> BigInt,
        failures -> Integer,
        etag -> Nullable<Text>,
        last_modified -> Nullable<Text>,
        sync_cursor -> Nullable<Text>,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<BigInt>,
    }
}
