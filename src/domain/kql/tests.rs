//! Expected results here are worked out by hand from Kusto's documented semantics.

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;

use serde_json::{Value, json};

use super::*;
use crate::domain::Timestamp;

/// 2026-12-07T12:00:00Z.
const NOW_MICROS: i64 = 1_796_644_800_000_000;
const ACR_KEY: &str = "c0b7cfc6-3172-465a-b378-53c7ff2cc0d5";

fn now() -> Timestamp {
    Timestamp::from_micros(NOW_MICROS)
}

fn minutes_ago(minutes: i64) -> String {
    Timestamp::from_micros(NOW_MICROS - minutes * 60_000_000).rfc3339()
}

fn object(value: Value) -> Row {
    match value {
        Value::Object(map) => map,
        _ => Row::new(),
    }
}

/// (name, subscription, assessment key, severity, minutes ago, resource type, display name,
/// cvss, tags)
#[allow(clippy::type_complexity)]
const FINDINGS: &[(
    &str,
    &str,
    &str,
    &str,
    i64,
    &str,
    &str,
    Option<f64>,
    Option<&[&str]>,
)] = &[
    (
        "a1",
        "sub1",
        ACR_KEY,
        "High",
        30,
        "AzureContainerRegistryVulnerability",
        "py: ReDoS in py library",
        Some(7.5),
        Some(&["v1", "latest"]),
    ),
    (
        "a2",
        "sub1",
        ACR_KEY,
        "High",
        120,
        "AzureContainerRegistryVulnerability",
        "openssl: buffer overflow",
        Some(8.1),
        Some(&["v2"]),
    ),
    (
        "a3",
        "sub2",
        ACR_KEY,
        "Medium",
        10,
        "AzureContainerRegistryVulnerability",
        "zlib: heap-overflow in inflate",
        Some(5.0),
        Some(&[]),
    ),
    (
        "a4",
        "sub1",
        ACR_KEY,
        "Low",
        5,
        "ServerVulnerability",
        "kernel: use-after-free",
        None,
        None,
    ),
    (
        "a5",
        "sub2",
        "dbd0cb49-b563-45e7-9724-889e799fa648",
        "Medium",
        20,
        "AzureContainerRegistryVulnerability",
        "curl: cookie injection",
        Some(6.1),
        Some(&["1.0"]),
    ),
    (
        "a6",
        "sub2",
        ACR_KEY,
        "High",
        3 * 24 * 60,
        "AzureContainerRegistryVulnerability",
        "glibc: buffer overflow in iconv",
        Some(9.8),
        Some(&["latest"]),
    ),
];

fn registry_id(subscription: &str) -> String {
    let (group, registry) = if subscription == "sub1" {
        ("rg1", "reg1")
    } else {
        ("rg2", "reg2")
    };
    format!(
        "/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.ContainerRegistry/registries/{registry}"
    )
}

fn findings() -> Vec<Row> {
    FINDINGS
        .iter()
        .map(|&(name, sub, key, severity, age, resource_type, display, cvss, tags)| {
            let group = if sub == "sub1" { "rg1" } else { "rg2" };
            let mut artifact = json!({ "repositoryName": if sub == "sub1" { "app/web" } else { "lib/base" } });
            if let Some(tags) = tags {
                artifact["tags"] = json!(tags);
            }
            let mut additional = json!({
                "assessedResourceType": resource_type,
                "artifactDetails": artifact,
            });
            if let Some(cvss) = cvss {
                additional["cvss"] = json!(cvss);
            }
            object(json!({
                "id": format!("{}/providers/Microsoft.Security/assessments/{key}/subassessments/{name}", registry_id(sub)),
                "name": name,
                // One row's type differs in case: `==` misses it, `=~` finds it.
                "type": if name == "a4" { "Microsoft.Security/Assessments/SubAssessments" } else { "microsoft.security/assessments/subassessments" },
                "subscriptionId": sub,
                "resourceGroup": group,
                "location": "global",
                "properties": {
                    "id": format!("CVE-2022-4296{}", &name[1..]),
                    "displayName": display,
                    "status": { "code": "Unhealthy", "severity": severity },
                    "timeGenerated": minutes_ago(age),
                    "additionalData": additional,
                },
            }))
        })
        .collect()
}

fn registries() -> Vec<Row> {
    ["sub1", "sub2", "sub3"]
        .iter()
        .enumerate()
        .map(|(i, sub)| {
            let id = if *sub == "sub3" {
                "/subscriptions/sub3/resourceGroups/rg3/providers/Microsoft.ContainerRegistry/registries/reg3".to_owned()
            } else {
                registry_id(sub)
            };
            object(json!({
                "id": id,
                "name": format!("reg{}", i + 1),
                "type": "microsoft.containerregistry/registries",
                "subscriptionId": sub,
                "properties": { "loginServer": format!("reg{}.azurecr.io", i + 1) },
            }))
        })
        .collect()
}

/// Tables in memory; remembers the constraints and read paths each read was given.
#[derive(Clone)]
struct Memory {
    tables: HashMap<&'static str, Vec<Row>>,
    constraints: Vec<(String, Vec<Constraint>)>,
    reads: Vec<Option<Vec<Vec<String>>>>,
    /// Reads through `counted_rows`.
    counted: usize,
    /// Cut each row to the paths the scan reads, as a source that builds only those may.
    prune: bool,
}

impl Memory {
    fn new() -> Self {
        Self {
            tables: HashMap::from([
                ("securityresources", findings()),
                ("resources", registries()),
            ]),
            constraints: Vec::new(),
            reads: Vec::new(),
            counted: 0,
            prune: false,
        }
    }
}

/// What is left of `value` when only `paths` (relative to it) are kept; `None` when none lies in it.
fn keep_paths(value: &Value, paths: &[&[String]]) -> Option<Value> {
    if paths.iter().any(|p| p.is_empty()) {
        return Some(value.clone());
    }
    let Value::Object(members) = value else {
        return None;
    };
    let kept: Row = members
        .iter()
        .filter_map(|(name, member)| {
            let below: Vec<&[String]> = paths
                .iter()
                .filter_map(|p| p.split_first())
                .filter(|(head, _)| *head == name)
                .map(|(_, rest)| rest)
                .collect();
            if below.is_empty() {
                return None;
            }
            keep_paths(member, &below).map(|v| (name.clone(), v))
        })
        .collect();
    Some(Value::Object(kept))
}

impl Source for Memory {
    type Error = String;

    fn rows<'a>(
        &'a mut self,
        table: &str,
        scan: &Scan,
    ) -> Result<Box<dyn Iterator<Item = Result<Row, String>> + 'a>, String> {
        let table = table.to_ascii_lowercase();
        self.constraints
            .push((table.clone(), scan.constraints.clone()));
        self.reads.push(scan.reads.clone());
        let mut rows = self.tables.get(table.as_str()).cloned().unwrap_or_default();
        if let (true, Some(reads)) = (self.prune, &scan.reads) {
            let paths: Vec<&[String]> = reads.iter().map(Vec::as_slice).collect();
            rows = rows
                .into_iter()
                .map(|row| match keep_paths(&Value::Object(row), &paths) {
                    Some(Value::Object(kept)) => kept,
                    _ => Row::new(),
                })
                .collect();
        }
        Ok(Box::new(rows.into_iter().map(Ok)))
    }

    /// When pruning, a run of equal rows is handed over once with its length, as a source that
    /// counts may.
    fn counted_rows<'a>(
        &'a mut self,
        table: &str,
        scan: &Scan,
    ) -> Result<Box<dyn Iterator<Item = Result<(Row, u64), String>> + 'a>, String> {
        let prune = self.prune;
        let rows: Vec<Row> = self.rows(table, scan)?.collect::<Result<_, _>>()?;
        self.counted += 1;
        let mut counted: Vec<(Row, u64)> = Vec::new();
        for row in rows {
            match counted.last_mut() {
                Some((last, times)) if prune && *last == row => *times += 1,
                _ => counted.push((row, 1)),
            }
        }
        Ok(Box::new(counted.into_iter().map(Ok)))
    }

    fn has_table(&self, table: &str) -> bool {
        self.tables
            .contains_key(table.to_ascii_lowercase().as_str())
    }
}

const ALL: Window = Window { skip: 0, top: 1000 };

/// Runs `text` on `source`, and again on a copy of it that cuts rows to the paths the query
/// reads: every query of these tests checks that what the engine says it reads is enough.
fn run_on(source: &mut Memory, text: &str, window: Window) -> Result<Output, KqlError> {
    let query = parse(text)?;
    let mut pruning = Memory {
        prune: true,
        ..source.clone()
    };
    let output = execute(&query, source, window, now()).map_err(|e| match e {
        ExecError::Query(e) => e,
        ExecError::Source(e) => panic!("source failed: {e}"),
    });
    let pruned = execute(&query, &mut pruning, window, now()).map_err(|e| match e {
        ExecError::Query(e) => e,
        ExecError::Source(e) => panic!("source failed: {e}"),
    });
    assert_eq!(output, pruned, "{text}: rows cut to {:?}", pruning.reads);
    output
}

fn run(text: &str) -> Output {
    match run_on(&mut Memory::new(), text, ALL) {
        Ok(output) => output,
        Err(e) => panic!("{text}: {e}"),
    }
}

fn rows(text: &str) -> Value {
    json!(run(text).rows)
}

fn names(text: &str) -> Vec<String> {
    run(text).columns.into_iter().map(|c| c.name).collect()
}

/// One scalar expression's value, evaluated on the first row.
fn scalar(expr: &str) -> Value {
    let text = format!("securityresources | take 1 | project v = {expr}");
    run(&text)
        .rows
        .first()
        .and_then(|r| r.first())
        .cloned()
        .unwrap_or(Value::Null)
}

const QUERY_ONE: &str = r#"securityresources
| where type =~ "microsoft.security/assessments/subassessments" and properties.additionalData.assessedResourceType == "AzureContainerRegistryVulnerability"
| extend assessmentKey=extract(@"(?i)providers/Microsoft.Security/assessments/([^/]*)", 1, id)
| where assessmentKey == "c0b7cfc6-3172-465a-b378-53c7ff2cc0d5"
| extend timeGenerated = properties.timeGenerated
| where timeGenerated > ago(1h)"#;

const QUERY_TWO: &str = r#"securityresources
| where type == "microsoft.security/assessments/subassessments"
| extend severity = tostring(properties.status.severity)
| summarize findings = count() by severity
| order by findings desc"#;

#[test]
fn kql_the_issue_queries_run_as_printed() {
    let one = run(QUERY_ONE);
    let name = one.columns.iter().position(|c| c.name == "name");
    let found: Vec<&Value> = one.rows.iter().filter_map(|r| r.get(name?)).collect();
    assert_eq!(found, [&json!("a1"), &json!("a3")]);
    assert_eq!(one.total_records, 2);
    let kinds: HashMap<&str, ColumnType> = one
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.kind))
        .collect();
    assert_eq!(kinds["assessmentKey"], ColumnType::String);
    assert_eq!(kinds["timeGenerated"], ColumnType::Object);
    assert_eq!(kinds["properties"], ColumnType::Object);
    assert_eq!(
        one.columns.last().map(|c| c.name.as_str()),
        Some("timeGenerated")
    );

    let two = run(QUERY_TWO);
    assert_eq!(
        two.columns,
        [
            Column {
                name: "severity".into(),
                kind: ColumnType::String
            },
            Column {
                name: "findings".into(),
                kind: ColumnType::Integer
            },
        ]
    );
    assert_eq!(json!(two.rows), json!([["High", 3], ["Medium", 2]]));
}

#[test]
fn kql_sources_are_told_the_paths_a_query_reads() {
    let reads = |text: &str| {
        let mut source = Memory::new();
        run_on(&mut source, text, ALL).unwrap_or_else(|e| panic!("{text}: {e}"));
        source
            .reads
            .pop()
            .flatten()
            .map(|paths| paths.into_iter().map(|p| p.join(".")).collect::<Vec<_>>())
    };
    assert_eq!(
        reads(QUERY_TWO),
        Some(vec!["type".into(), "properties.status.severity".into()])
    );
    // An extended name read later is not the table's; a computed member reads its base whole.
    assert_eq!(
        reads(
            "securityresources | extend s = properties.status | where s.severity == 'High' \
             | project id, k = properties['additionalData'][tostring(0)]"
        ),
        Some(vec![
            "properties.status".into(),
            "id".into(),
            "properties.additionalData".into()
        ])
    );
    assert_eq!(reads("securityresources | count"), Some(vec![]));
    // A summarize that counts after `where` and `extend` reads counted rows; one that sums does
    // not, nor one after another operator.
    let counted = |text: &str| {
        let mut source = Memory::new();
        run_on(&mut source, text, ALL).unwrap_or_else(|e| panic!("{text}: {e}"));
        source.counted
    };
    assert_eq!(counted(QUERY_TWO), 1);
    assert_eq!(
        counted(
            "securityresources | summarize n = dcount(name), c = countif(type == 'x') by subscriptionId"
        ),
        1
    );
    assert_eq!(
        counted("securityresources | summarize sum(toint(1)) by type"),
        0
    );
    assert_eq!(counted("securityresources | take 3 | summarize count()"), 0);
    assert_eq!(
        reads("securityresources | distinct subscriptionId"),
        Some(vec!["subscriptionId".into()])
    );
    // The table's columns come out unnamed, or whole rows are read: every path.
    for text in [
        "securityresources | where type == 'x'",
        "securityresources | summarize arg_max(name, *) by type",
        "securityresources | project-away properties | project id",
        "securityresources | distinct *",
        "securityresources | union resources | project id",
        "securityresources | mv-expand p = properties | project p",
    ] {
        assert_eq!(reads(text), None, "{text}");
    }
}

#[test]
fn kql_leading_where_conjuncts_reach_the_source_as_constraints() {
    let mut source = Memory::new();
    run_on(&mut source, QUERY_ONE, ALL)
        .map_err(|e| e.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    let one_of = |column: &[&str], value: &str, ignore_case| Constraint {
        column: column.iter().map(|s| s.to_string()).collect(),
        test: Test::OneOf {
            values: vec![json!(value)],
            ignore_case,
        },
    };
    assert_eq!(
        source.constraints,
        [(
            "securityresources".to_owned(),
            vec![
                one_of(
                    &["type"],
                    "microsoft.security/assessments/subassessments",
                    true
                ),
                one_of(
                    &["properties", "additionalData", "assessedResourceType"],
                    "AzureContainerRegistryVulnerability",
                    false
                ),
                // `timeGenerated` was extended as `properties.timeGenerated`; `assessmentKey`
                // is computed, so its test stays here.
                Constraint {
                    column: vec!["properties".into(), "timeGenerated".into()],
                    test: Test::Compare {
                        op: CompareOp::Gt,
                        value: json!("2026-12-07T11:00:00.000000Z"),
                    },
                },
            ]
        )]
    );

    let mut source = Memory::new();
    run_on(&mut source, QUERY_TWO, ALL).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        source.constraints,
        [(
            "securityresources".to_owned(),
            vec![one_of(
                &["type"],
                "microsoft.security/assessments/subassessments",
                false
            )]
        )]
    );

    let mut source = Memory::new();
    let text = r#"let since = ago(2d);
        securityresources
        | where subscriptionId in ("sub1", "sub2") and resourceGroup in~ ("RG1")
        | where properties['status']['severity'] == "High" and 7 < properties.additionalData.cvss
        | where properties.timeGenerated >= since or name == "a1"
        | where not(name == "a2") and properties.additionalData.assessedResourceType == "AzureContainerRegistryVulnerability"
        | extend severity = "x"
        | where severity == "x" and properties.status.code == "Unhealthy"
        | project name
        | where name == "a1""#;
    let output = run_on(&mut source, text, ALL).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(json!(output.rows), json!([["a1"]]));
    let (_, constraints) = &source.constraints[0];
    let described: Vec<String> = constraints
        .iter()
        .map(|c| format!("{} {:?}", c.column.join("."), c.test))
        .collect();
    assert_eq!(
        described,
        [
            r#"subscriptionId OneOf { values: [String("sub1"), String("sub2")], ignore_case: false }"#,
            r#"resourceGroup OneOf { values: [String("RG1")], ignore_case: true }"#,
            r#"properties.status.severity OneOf { values: [String("High")], ignore_case: false }"#,
            r#"properties.additionalData.cvss Compare { op: Gt, value: Number(7) }"#,
            r#"properties.additionalData.assessedResourceType OneOf { values: [String("AzureContainerRegistryVulnerability")], ignore_case: false }"#,
            r#"properties.status.code OneOf { values: [String("Unhealthy")], ignore_case: false }"#,
        ]
    );
}

#[test]
fn kql_where_operators() {
    let cases: &[(&str, Value)] = &[
        (
            r#"where properties.status.severity == "High""#,
            json!(["a1", "a2", "a6"]),
        ),
        (
            r#"where properties.status.severity != "High""#,
            json!(["a3", "a4", "a5"]),
        ),
        (
            r#"where properties.status.severity =~ "high""#,
            json!(["a1", "a2", "a6"]),
        ),
        (
            r#"where properties.status.severity !~ "HIGH""#,
            json!(["a3", "a4", "a5"]),
        ),
        (
            r#"where type == "microsoft.security/assessments/subassessments""#,
            json!(["a1", "a2", "a3", "a5", "a6"]),
        ),
        (
            r#"where properties.displayName contains "REDOS""#,
            json!(["a1"]),
        ),
        (
            r#"where properties.displayName !contains "overflow""#,
            json!(["a1", "a4", "a5"]),
        ),
        (
            r#"where properties.displayName contains_cs "REDOS""#,
            json!([]),
        ),
        (
            r#"where properties.displayName has "overflow""#,
            json!(["a2", "a3", "a6"]),
        ),
        (r#"where properties.displayName has "flow""#, json!([])),
        (
            r#"where properties.displayName !has "OVERFLOW""#,
            json!(["a1", "a4", "a5"]),
        ),
        (
            r#"where properties.displayName startswith "PY""#,
            json!(["a1"]),
        ),
        (
            r#"where properties.displayName endswith "ICONV""#,
            json!(["a6"]),
        ),
        (
            r#"where properties.displayName matches regex @"^(openssl|glibc):""#,
            json!(["a2", "a6"]),
        ),
        (r#"where name in ("a1", "a3")"#, json!(["a1", "a3"])),
        (
            r#"where name !in ("a1", "a3")"#,
            json!(["a2", "a4", "a5", "a6"]),
        ),
        (r#"where name in~ ("A1")"#, json!(["a1"])),
        (
            r#"where name in (dynamic(["a2", "a4"]))"#,
            json!(["a2", "a4"]),
        ),
        (
            "where properties.additionalData.cvss > 8",
            json!(["a2", "a6"]),
        ),
        (
            "where properties.additionalData.cvss <= 6.1",
            json!(["a3", "a5"]),
        ),
        (
            "where properties.additionalData.cvss between (5.0 .. 7.5)",
            json!(["a1", "a3", "a5"]),
        ),
        (
            "where properties.additionalData.cvss !between (5.0 .. 7.5)",
            json!(["a2", "a6"]),
        ),
        (
            r#"where name == "a1" or (properties.status.severity == "Medium" and not(name == "a5"))"#,
            json!(["a1", "a3"]),
        ),
        (
            "where properties.timeGenerated > ago(1h)",
            json!(["a1", "a3", "a4", "a5"]),
        ),
        (
            "where todatetime(properties.timeGenerated) < now(-1d)",
            json!(["a6"]),
        ),
        (
            "where properties.timeGenerated between (ago(1h) .. now())",
            json!(["a1", "a3", "a4", "a5"]),
        ),
        // Comparing a missing member or mismatched types is null, never an error.
        ("where properties.missing > 5", json!([])),
        (r#"where properties.status > "a""#, json!([])),
        (
            r#"where properties.missing != "x""#,
            json!(["a1", "a2", "a3", "a4", "a5", "a6"]),
        ),
        (
            "where isnull(properties.additionalData.cvss)",
            json!(["a4"]),
        ),
        (
            r#"filter properties.status.severity == "Low""#,
            json!(["a4"]),
        ),
        (
            "where properties.additionalData.artifactDetails.tags[0] == \"latest\"",
            json!(["a6"]),
        ),
        (
            "where properties.additionalData.artifactDetails.tags[-1] == \"latest\"",
            json!(["a1", "a6"]),
        ),
        (
            "where properties['additionalData']['artifactDetails']['repositoryName'] == 'lib/base'",
            json!(["a3", "a5", "a6"]),
        ),
    ];
    for (clause, expected) in cases {
        let text = format!("securityresources | {clause} | project name");
        let got: Vec<Value> = run(&text)
            .rows
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .collect();
        assert_eq!(json!(got), *expected, "{clause}");
    }
}

#[test]
fn kql_scalar_functions() {
    let cases: &[(&str, Value)] = &[
        ("tostring(1.5)", json!("1.5")),
        (
            "tostring(properties.status)",
            json!(r#"{"code":"Unhealthy","severity":"High"}"#),
        ),
        ("tostring(properties.missing)", json!("")),
        (r#"toint("42")"#, json!(42)),
        (r#"tolong(" 7 ")"#, json!(7)),
        (r#"tolong("x")"#, json!(null)),
        (r#"toreal("2.5")"#, json!(2.5)),
        ("todouble(properties.additionalData.cvss)", json!(7.5)),
        (r#"tobool("TRUE")"#, json!(true)),
        (r#"todatetime("2024-01-02")"#, json!("2024-01-02T00:00:00Z")),
        (
            r#"todatetime("2024-01-02T03:04:05.5+01:00")"#,
            json!("2024-01-02T02:04:05.5000000Z"),
        ),
        (r#"parse_json('{"a":[1,2]}').a[1]"#, json!(2)),
        (r#"todynamic("[1]")"#, json!([1])),
        (
            r#"extract("([0-9]+)-([0-9]+)", 2, "CVE-2022-42969")"#,
            json!("42969"),
        ),
        (
            r#"extract("([0-9]+)-([0-9]+)", 2, "CVE-2022-42969", typeof(long))"#,
            json!(42969),
        ),
        (r#"extract("x(y)", 1, "abc")"#, json!("")),
        (r#"split("a/b/c", "/")"#, json!(["a", "b", "c"])),
        (r#"split("a/b/c", "/", 1)"#, json!(["b"])),
        (r#"split(id, "/")[2]"#, json!("sub1")),
        (r#"strcat("a", 1, "b", true)"#, json!("a1btrue")),
        (r#"strlen("héllo")"#, json!(5)),
        (r#"substring("abcdef", 2, 3)"#, json!("cde")),
        (r#"substring("abc", 1)"#, json!("bc")),
        (r#"tolower("AbC")"#, json!("abc")),
        (r#"toupper("AbC")"#, json!("ABC")),
        (r#"trim(" ", "  x  ")"#, json!("x")),
        (r#"trim(@"[/]+", "//a/b//")"#, json!("a/b")),
        (r#"trim_start("a", "aabca")"#, json!("bca")),
        (r#"trim_end("a", "aabca")"#, json!("aabc")),
        (r#"replace_string("a.b.c", ".", "-")"#, json!("a-b-c")),
        (
            r#"replace_regex("a1b22", @"(\d+)", @"<\1>")"#,
            json!("a<1>b<22>"),
        ),
        (r#"iff(1 > 2, "y", "n")"#, json!("n")),
        (
            r#"iif(properties.status.severity == "High", 1, 0)"#,
            json!(1),
        ),
        (r#"case(1 > 2, "a", 2 > 1, "b", "c")"#, json!("b")),
        (r#"case(false, "a", "c")"#, json!("c")),
        (r#"coalesce(properties.missing, "", "z")"#, json!("z")),
        ("coalesce(properties.missing, 3)", json!(3)),
        ("isnull(properties.missing)", json!(true)),
        ("isnotnull(name)", json!(true)),
        (r#"isempty("")"#, json!(true)),
        ("isempty(properties.missing)", json!(true)),
        ("isnotempty(name)", json!(true)),
        (
            "array_length(properties.additionalData.artifactDetails.tags)",
            json!(2),
        ),
        ("array_length(name)", json!(null)),
        ("bag_keys(properties.status)", json!(["code", "severity"])),
        ("pack_array(1, \"a\")", json!([1, "a"])),
        ("ago(1h)", json!("2026-12-07T11:00:00Z")),
        ("now()", json!("2026-12-07T12:00:00Z")),
        ("datetime(2024-03-05 10:30)", json!("2024-03-05T10:30:00Z")),
        (
            "datetime(\"2024-03-05T10:30:00Z\") + 1d",
            json!("2024-03-06T10:30:00Z"),
        ),
        (
            "startofday(datetime(2024-03-05T10:30:00Z))",
            json!("2024-03-05T00:00:00Z"),
        ),
        (
            "startofday(datetime(2024-03-05T10:30:00Z), -1)",
            json!("2024-03-04T00:00:00Z"),
        ),
        (
            "bin(datetime(2024-03-05T10:31:00Z), 1h)",
            json!("2024-03-05T10:00:00Z"),
        ),
        ("bin(17, 5)", json!(15)),
        ("bin(2.7, 0.5)", json!(2.5)),
        ("floor(-3, 2)", json!(-4)),
        (
            r#"format_datetime(datetime(2024-03-05T09:08:07.25Z), "yyyy-MM-dd HH:mm:ss.ff")"#,
            json!("2024-03-05 09:08:07.25"),
        ),
        (
            r#"format_datetime(datetime(2024-03-05T13:08:07Z), "M/d/yy h tt")"#,
            json!("3/5/24 1 PM"),
        ),
        ("1h + 30m", json!("01:30:00")),
        ("7d", json!("7.00:00:00")),
        ("1.5s", json!("00:00:01.5000000")),
        ("100ms * 3", json!("00:00:00.3000000")),
        ("-2h", json!("-02:00:00")),
        (
            "datetime(2024-01-02) - datetime(2024-01-01) == 1d",
            json!(true),
        ),
        ("now() - ago(90m) > 1h", json!(true)),
        ("7 / 2", json!(3)),
        ("7.0 / 2", json!(3.5)),
        ("7 % 3", json!(1)),
        ("-(3)", json!(-3)),
        ("2 + 3 * 4", json!(14)),
        ("(2 + 3) * 4", json!(20)),
        ("1 / 0", json!(null)),
        (r#"1 + "a""#, json!(null)),
        ("9223372036854775807 + 1", json!(null)),
        ("99999999999999999999", json!(1e20)),
        ("abs(-2.5)", json!(2.5)),
        ("round(2.567, 2)", json!(2.57)),
        (r#""a\"b""#, json!("a\"b")),
        (r#"'it\'s'"#, json!("it's")),
        (r#"@"C:\temp""#, json!("C:\\temp")),
        (r#"@"say ""hi""""#, json!("say \"hi\"")),
        (r#"@'a''b'"#, json!("a'b")),
        (r#""\u00e9\t""#, json!("é\t")),
        (r#"not(true)"#, json!(false)),
        ("true and false or true", json!(true)),
        ("properties.missing > 1 and false", json!(false)),
        ("long(null)", json!(null)),
        (
            r#"dynamic({"a": [1, {"b": null}]})"#,
            json!({"a": [1, {"b": null}]}),
        ),
        ("['name']", json!("a1")),
    ];
    for (expr, expected) in cases {
        assert_eq!(scalar(expr), *expected, "{expr}");
    }
}

#[test]
fn kql_tabular_operators() {
    let cases: &[(&str, Value)] = &[
        (
            "securityresources | extend repo = properties.additionalData.artifactDetails.repositoryName | where repo == 'lib/base' | project name, repo",
            json!([["a3", "lib/base"], ["a5", "lib/base"], ["a6", "lib/base"]]),
        ),
        (
            "securityresources | extend a = 1, b = a + 1 | project name, b | take 1",
            json!([["a1", 2]]),
        ),
        (
            "securityresources | project name, location, type | project-away type | take 1",
            json!([["a1", "global"]]),
        ),
        (
            "securityresources | project name, subscriptionId, resourceGroup | project-away *Id | take 1",
            json!([["a1", "rg1"]]),
        ),
        (
            "securityresources | project name, sev = properties['status']['severity'] | project-rename n = name | take 2",
            json!([["a1", "High"], ["a2", "High"]]),
        ),
        (
            "securityresources | summarize count(), countif(properties.status.severity == 'High'), dcount(subscriptionId), make_set(properties.status.severity), min(properties.additionalData.cvss), max(properties.additionalData.cvss), sum(toint(properties.additionalData.cvss)), take_any(location)",
            json!([[6, 3, 2, ["High", "Medium", "Low"], 5.0, 9.8, 35, "global"]]),
        ),
        (
            "securityresources | summarize n = count() by subscriptionId | order by subscriptionId asc",
            json!([["sub1", 3], ["sub2", 3]]),
        ),
        (
            "securityresources | summarize make_list(name) by subscriptionId | sort by subscriptionId desc",
            json!([["sub2", ["a3", "a5", "a6"]], ["sub1", ["a1", "a2", "a4"]]]),
        ),
        (
            "securityresources | summarize make_set(name, 2) by resourceGroup | order by resourceGroup asc",
            json!([["rg1", ["a1", "a2"]], ["rg2", ["a3", "a5"]]]),
        ),
        (
            "securityresources | summarize arg_max(properties.additionalData.cvss, name) by subscriptionId | order by subscriptionId asc",
            json!([["sub1", 8.1, "a2"], ["sub2", 9.8, "a6"]]),
        ),
        (
            "securityresources | project name, subscriptionId, cvss = todouble(properties.additionalData.cvss) | summarize arg_min(cvss, *) by subscriptionId | order by subscriptionId asc",
            json!([["sub1", 7.5, "a1"], ["sub2", 5.0, "a3"]]),
        ),
        (
            "securityresources | order by name desc | summarize arg_max(properties.additionalData.cvss, name) by resourceGroup | order by resourceGroup asc",
            json!([["rg1", 8.1, "a2"], ["rg2", 9.8, "a6"]]),
        ),
        (
            "securityresources | summarize by subscriptionId, resourceGroup",
            json!([["sub1", "rg1"], ["sub2", "rg2"]]),
        ),
        (
            "securityresources | where name == 'none' | summarize count(), make_set(name), max(name)",
            json!([[0, [], null]]),
        ),
        (
            "securityresources | where name == 'none' | summarize count() by name",
            json!([]),
        ),
        (
            "securityresources | summarize count() by day = bin(todatetime(properties.timeGenerated), 1d) | order by day asc",
            json!([["2026-12-04T00:00:00Z", 1], ["2026-12-07T00:00:00Z", 5]]),
        ),
        (
            "securityresources | project name, c = properties.additionalData.cvss | order by c asc | project name",
            json!([["a4"], ["a3"], ["a5"], ["a1"], ["a2"], ["a6"]]),
        ),
        (
            "securityresources | project name, c = properties.additionalData.cvss | order by c desc | project name",
            json!([["a6"], ["a2"], ["a1"], ["a5"], ["a3"], ["a4"]]),
        ),
        (
            "securityresources | project name, c = properties.additionalData.cvss | order by c desc nulls first | take 2 | project name",
            json!([["a4"], ["a6"]]),
        ),
        (
            "securityresources | order by properties.status.severity asc, name desc | project name",
            json!([["a6"], ["a2"], ["a1"], ["a4"], ["a5"], ["a3"]]),
        ),
        (
            "securityresources | top 2 by properties.additionalData.cvss | project name",
            json!([["a6"], ["a2"]]),
        ),
        (
            "securityresources | top 1 by name asc | project name",
            json!([["a1"]]),
        ),
        (
            "securityresources | take 2 | project name",
            json!([["a1"], ["a2"]]),
        ),
        (
            "securityresources | limit 1 | project name",
            json!([["a1"]]),
        ),
        ("securityresources | take 0 | project name", json!([])),
        (
            "securityresources | distinct subscriptionId",
            json!([["sub1"], ["sub2"]]),
        ),
        (
            "securityresources | distinct subscriptionId, resourceGroup",
            json!([["sub1", "rg1"], ["sub2", "rg2"]]),
        ),
        (
            "securityresources | project location | distinct *",
            json!([["global"]]),
        ),
        ("securityresources | count", json!([[6]])),
        (
            "securityresources | where name == 'x' | count",
            json!([[0]]),
        ),
        (
            "securityresources | extend registryId = tostring(split(id, '/providers/Microsoft.Security/')[0]) | project name, registryId | join kind=inner (resources | project registryId = id, registry = name) on registryId | project name, registry",
            json!([
                ["a1", "reg1"],
                ["a2", "reg1"],
                ["a3", "reg2"],
                ["a4", "reg1"],
                ["a5", "reg2"],
                ["a6", "reg2"]
            ]),
        ),
        (
            "securityresources | extend registryId = tostring(split(id, '/providers/Microsoft.Security/')[0]) | project name, registryId | join (resources | project registryId = id, registry = name) on registryId | project name, registry",
            json!([["a1", "reg1"], ["a3", "reg2"]]),
        ),
        (
            "securityresources | extend registryId = tostring(split(id, '/providers/Microsoft.Security/')[0]) | project name, registryId | join kind=leftouter (resources | where name == 'reg1' | project id, registry = name) on $left.registryId == $right.id | project name, registry",
            json!([
                ["a1", "reg1"],
                ["a2", "reg1"],
                ["a3", null],
                ["a4", "reg1"],
                ["a5", null],
                ["a6", null]
            ]),
        ),
        (
            "securityresources | extend registryId = tostring(split(id, '/providers/Microsoft.Security/')[0]) | project name, registryId | join kind=inner (resources | project registryId = id, name) on registryId | project name, name1 | take 1",
            json!([["a1", "reg1"]]),
        ),
        (
            "resources | union (securityresources | take 1) | count",
            json!([[4]]),
        ),
        (
            "union resources, (securityresources | take 2) | count",
            json!([[5]]),
        ),
        ("resources | union securityresources | count", json!([[9]])),
        (
            "securityresources | where name == 'a1' | mv-expand tag = properties.additionalData.artifactDetails.tags | project name, tag",
            json!([["a1", "v1"], ["a1", "latest"]]),
        ),
        (
            "securityresources | project name, tags = properties.additionalData.artifactDetails.tags | mv-expand tags | project name, tags",
            json!([
                ["a1", "v1"],
                ["a1", "latest"],
                ["a2", "v2"],
                ["a4", null],
                ["a5", "1.0"],
                ["a6", "latest"]
            ]),
        ),
        (
            "securityresources | where name == 'a1' | project s = properties.status | mv-expand s",
            json!([[{"code": "Unhealthy"}], [{"severity": "High"}]]),
        ),
        (
            "securityresources | where name == 'a1' | mv-expand t = properties.additionalData.artifactDetails.tags limit 1 | project t",
            json!([["v1"]]),
        ),
        (
            "securityresources | where name == 'a1' | parse id with * '/registries/' registry '/providers/' * '/subassessments/' finding | project registry, finding",
            json!([["reg1", "a1"]]),
        ),
        (
            "securityresources | where name == 'a1' | parse properties.id with 'CVE-' year:long '-' number:long | project year, number",
            json!([[2022, 42961]]),
        ),
        (
            "securityresources | where name == 'a1' | parse name with 'zz' rest | project rest",
            json!([[""]]),
        ),
        (
            "let sev = 'High'; let n = 1 + 1;\nsecurityresources | where properties.status.severity == sev | take n | project name",
            json!([["a1"], ["a2"]]),
        ),
        (
            "securityresources // every finding\n| take 1 // just one\n// done\n| project name",
            json!([["a1"]]),
        ),
        (
            "(securityresources | where name == 'a2') | project name",
            json!([["a2"]]),
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(rows(text), *expected, "{text}");
    }
}

#[test]
fn kql_output_columns_are_named_and_typed_as_kusto_names_them() {
    assert_eq!(
        names(
            "securityresources | summarize count(), countif(true), dcount(name), make_set(name), make_list(name), min(properties.additionalData.cvss), max(name), sum(1), avg(1), take_any(name)"
        ),
        [
            "count_",
            "countif_",
            "dcount_name",
            "set_name",
            "list_name",
            "min_properties_additionalData_cvss",
            "max_name",
            "sum_",
            "avg_",
            "take_any_name"
        ]
    );
    assert_eq!(
        names(
            "securityresources | summarize count() by bin(todatetime(properties.timeGenerated), 1h), properties.status.severity"
        ),
        [
            "properties_timeGenerated",
            "properties_status_severity",
            "count_"
        ]
    );
    assert_eq!(
        names("securityresources | project name, properties.status.severity, strlen(name)"),
        ["name", "properties_status_severity", "Column3"]
    );
    assert_eq!(
        names("securityresources | where name == 'none' | project name, n = 1"),
        ["name", "n"]
    );
    let output = run(
        "securityresources | take 1 | project s = name, i = 1, r = 1.5, b = true, t = now(), d = properties, p = 1h, n = properties.missing",
    );
    let kinds: Vec<ColumnType> = output.columns.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [
            ColumnType::String,
            ColumnType::Integer,
            ColumnType::Number,
            ColumnType::Boolean,
            ColumnType::Datetime,
            ColumnType::Object,
            ColumnType::String,
            ColumnType::String
        ]
    );
    let avg = run("securityresources | summarize avg(todouble(properties.additionalData.cvss))");
    let value = avg.rows[0][0].as_f64().unwrap_or(f64::NAN);
    assert!((value - 7.3).abs() < 1e-9, "{value}");
    assert_eq!(avg.columns[0].kind, ColumnType::Number);
}

#[test]
fn kql_windows_count_every_row_and_keep_only_the_window() {
    let mut source = Memory::new();
    let window = Window { skip: 1, top: 2 };
    let output = run_on(
        &mut source,
        "securityresources | order by name desc | project name",
        window,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(json!(output.rows), json!([["a5"], ["a4"]]));
    assert_eq!(output.total_records, 6);
    let output = run_on(
        &mut Memory::new(),
        "securityresources | order by name desc",
        window,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(output.total_records, 6);
    assert_eq!(output.rows.len(), 2);
    let output = run_on(
        &mut Memory::new(),
        "securityresources | project name",
        Window { skip: 5, top: 10 },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (json!(output.rows), output.total_records),
        (json!([["a6"]]), 6)
    );
}

/// A table of `size` rows `{"i": n}` that counts how many rows were pulled.
struct Counting {
    size: u64,
    pulled: Rc<Cell<u64>>,
}

impl Source for Counting {
    type Error = String;

    fn rows<'a>(
        &'a mut self,
        _table: &str,
        _scan: &Scan,
    ) -> Result<Box<dyn Iterator<Item = Result<Row, String>> + 'a>, String> {
        let pulled = Rc::clone(&self.pulled);
        Ok(Box::new((0..self.size).map(move |i| {
            pulled.set(pulled.get() + 1);
            Ok(object(json!({ "i": i })))
        })))
    }

    fn has_table(&self, _table: &str) -> bool {
        true
    }
}

fn run_counting(text: &str, size: u64, window: Window) -> (Output, u64) {
    let pulled = Rc::new(Cell::new(0));
    let mut source = Counting {
        size,
        pulled: Rc::clone(&pulled),
    };
    let query = parse(text).unwrap_or_else(|e| panic!("{e}"));
    let output = execute(&query, &mut source, window, now()).unwrap_or_else(|_| panic!("{text}"));
    (output, pulled.get())
}

#[test]
fn kql_take_stops_reading_the_source() {
    let (output, pulled) = run_counting("big | take 5", 1_000_000, ALL);
    assert_eq!((output.total_records, pulled), (5, 5));
    let (output, pulled) = run_counting(
        "big | where i % 2 == 1 | take 3 | project i",
        1_000_000,
        ALL,
    );
    assert_eq!(json!(output.rows), json!([[1], [3], [5]]));
    assert_eq!(pulled, 6);
}

#[test]
fn kql_a_final_order_by_keeps_the_window_and_counts_all() {
    let window = Window { skip: 10, top: 3 };
    let (output, pulled) = run_counting("big | order by i desc", 200_000, window);
    assert_eq!(pulled, 200_000);
    assert_eq!(output.total_records, 200_000);
    assert_eq!(json!(output.rows), json!([[199_989], [199_988], [199_987]]));
    let (output, _) = run_counting("big | top 2 by i asc | extend j = i * 2", 1000, ALL);
    assert_eq!(json!(output.rows), json!([[0, 0], [1, 2]]));
    let (output, _) = run_counting(
        "big | summarize count() by k = i % 3 | order by k asc",
        1000,
        ALL,
    );
    assert_eq!(json!(output.rows), json!([[0, 334], [1, 333], [2, 333]]));
}

#[test]
fn kql_bad_queries_are_refused_with_where() {
    let cases: &[(&str, &str, usize, usize, &str)] = &[
        ("securityresources | where", "ParserFailure", 1, 26, ""),
        (
            "securityresources | where name ==",
            "ParserFailure",
            1,
            34,
            "",
        ),
        (
            "securityresources\n| where name === \"a\"",
            "ParserFailure",
            2,
            16,
            "=",
        ),
        ("securityresources | take 5 |", "ParserFailure", 1, 29, ""),
        (
            "securityresources | where name == \"abc",
            "ParserFailure",
            1,
            35,
            "\"abc",
        ),
        (
            "securityresources\n| where name == 'a\n| take 1",
            "ParserFailure",
            2,
            17,
            "'a",
        ),
        (
            "securityresources | where (name == 'a'",
            "ParserFailure",
            1,
            39,
            "",
        ),
        (
            "securityresources | where name == 'a')",
            "ParserFailure",
            1,
            38,
            ")",
        ),
        (
            "securityresources | project-away",
            "ParserFailure",
            1,
            33,
            "",
        ),
        (
            "securityresources | extend x = é",
            "ParserFailure",
            1,
            32,
            "é",
        ),
        (
            "securitÿresources | take 1",
            "ParserFailure",
            1,
            8,
            "ÿresources",
        ),
        (
            "securityresources | whre name == 'a'",
            "InvalidQuery",
            1,
            21,
            "whre",
        ),
        (
            "securityresources\n  | where foo(name)",
            "InvalidQuery",
            2,
            11,
            "foo",
        ),
        (
            "securityresources | where tolower(name, 1) == 'a'",
            "InvalidQuery",
            1,
            27,
            "tolower",
        ),
        (
            "securityresources | summarize foo() by name",
            "InvalidQuery",
            1,
            31,
            "foo",
        ),
        (
            "securityresources | summarize count(name)",
            "InvalidQuery",
            1,
            31,
            "count",
        ),
        (
            "securityresources | summarize x = name",
            "InvalidQuery",
            1,
            35,
            "name",
        ),
        (
            "securityresources | where count() > 1",
            "InvalidQuery",
            1,
            27,
            "count",
        ),
        (
            "securityresources | where extract('(', 1, name) == ''",
            "InvalidQuery",
            1,
            35,
            "'('",
        ),
        (
            "securityresources | join kind=fullouter (resources) on id",
            "InvalidQuery",
            1,
            26,
            "kind",
        ),
        ("nosuchtable | take 1", "InvalidQuery", 1, 1, "nosuchtable"),
        (
            "securityresources | take name",
            "InvalidQuery",
            1,
            26,
            "name",
        ),
        (
            "securityresources | join (nosuch) on id",
            "InvalidQuery",
            1,
            27,
            "nosuch",
        ),
        (
            "securityresources | where x > datetime(yesterday)",
            "InvalidQuery",
            1,
            31,
            "yesterday",
        ),
    ];
    for &(text, code, line, position, token) in cases {
        let error = run_on(&mut Memory::new(), text, ALL).err();
        let got = error
            .as_ref()
            .map(|e| (e.code, e.line, e.position, e.token.as_str()));
        assert_eq!(
            got,
            Some((code, line, position, token)),
            "{text}: {error:?}"
        );
    }
}

#[test]
fn kql_garbage_deep_nesting_and_huge_input_never_panic() {
    let deep = format!(
        "securityresources | where {}1{}",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    let error = parse(&deep).err();
    assert_eq!(
        error.map(|e| (e.code, e.position)),
        Some(("InvalidQuery", 27 + MAX_NESTING))
    );

    let chain = format!("securityresources | where {}1 > 0", "1 + ".repeat(10_000));
    assert_eq!(parse(&chain).err().map(|e| e.code), Some("InvalidQuery"));
    let chain = format!("securityresources | where {}1 > 0", "1 + ".repeat(100));
    assert!(parse(&chain).is_ok());

    let signs = format!("securityresources | where x == {}1", "- ".repeat(1000));
    assert_eq!(parse(&signs).err().map(|e| e.code), Some("InvalidQuery"));

    // Each let doubles the one before: 2^40 nodes if copied blindly.
    let mut lets = String::from("let a0 = 1;");
    for i in 1..=40 {
        lets.push_str(&format!(" let a{i} = a{} + a{};", i - 1, i - 1));
    }
    let doubling = format!("{lets} securityresources | where a40 > 0");
    assert_eq!(parse(&doubling).err().map(|e| e.code), Some("InvalidQuery"));
    let nested_lets = "let a = 1; let b = a + a; let c = b * b; securityresources | take c | count";
    assert_eq!(json!(run(nested_lets).rows), json!([[4]]));

    let long = format!(
        "securityresources | where name == '{}'",
        "x".repeat(MAX_QUERY_LENGTH)
    );
    assert_eq!(parse(&long).err().map(|e| e.code), Some("InvalidQuery"));

    for text in [
        "",
        "|",
        "||||",
        ";",
        "let",
        "let x = ;",
        "securityresources | take 99999999999999999999999",
        "securityresources | take -5",
        "securityresources | where 1e999 > 1",
        "securityresources | extend x = 123456789012345678901234567890 * 2",
        "securityresources | where name == \"\\",
        "securityresources | where name == @\"",
        "securityresources | extend 名前 = 1",
        "securityresources | where name == '名前' | project ['名 前'] = name",
        "securityresources | take 1 | project x = 99999999999999999d",
        "securityresources | summarize make_set(name, -1)",
        "securityresources | mv-expand limit",
        "securityresources | parse name with",
        "securityresources | join on id",
        "(((",
        "securityresources | where a[[[[1]]]]",
        "\u{0}\u{1}\u{7f}",
        "securityresources | order by",
        "securityresources | project x = datetime(2024-13-45)",
        "securityresources | top by name",
        "securityresources | where substring(name, 99999999999, -3) == ''",
        "securityresources | extend x = bin(1, 0), y = 5 % 0, z = -9223372036854775807 - 2",
    ] {
        if let Ok(query) = parse(text) {
            let _ = execute(&query, &mut Memory::new(), ALL, now());
        }
    }
}

mod fuzz {
    use proptest::prelude::*;

    use super::*;

    const WORDS: &[&str] = &[
        "securityresources",
        "resources",
        "|",
        "where",
        "extend",
        "project",
        "project-away",
        "summarize",
        "by",
        "order",
        "sort",
        "top",
        "take",
        "distinct",
        "count",
        "join",
        "kind",
        "=",
        "==",
        "!=",
        "=~",
        "in",
        "!in",
        "has",
        "contains",
        "(",
        ")",
        "[",
        "]",
        ",",
        ".",
        "'a'",
        "\"b\"",
        "1",
        "1.5",
        "1h",
        "name",
        "properties",
        "x",
        "count()",
        "tostring",
        "ago",
        "and",
        "or",
        "not",
        "mv-expand",
        "parse",
        "with",
        "*",
        "union",
        "let",
        ";",
        "-",
        "+",
        "asc",
        "desc",
        "nulls",
        "first",
        "$left",
        "$right",
        "on",
        "datetime(2024-01-01)",
        "dynamic([1])",
        "@\"c\"",
        "//",
        "\n",
        "é",
        "between",
        "..",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn kql_any_text_parses_or_is_refused(text in "\\PC{0,80}") {
            if let Ok(query) = parse(&text) {
                let _ = execute(&query, &mut Memory::new(), ALL, now());
            }
        }

        #[test]
        fn kql_any_token_soup_parses_or_is_refused(words in proptest::collection::vec(0..WORDS.len(), 0..25)) {
            let text: Vec<&str> = words.iter().map(|&i| WORDS[i]).collect();
            let text = text.join(" ");
            match parse(&text) {
                Ok(query) => {
                    let _ = execute(&query, &mut Memory::new(), ALL, now());
                }
                Err(e) => {
                    prop_assert!(e.line >= 1 && e.position >= 1);
                    prop_assert!(e.code == "ParserFailure" || e.code == "InvalidQuery");
                }
            }
        }
    }
}

#[test]
fn kql_counted_rows_count_as_their_copies() {
    let row = |name: &str, severity: &str| {
        object(json!({"type": "t", "name": name, "properties": {"status": {"severity": severity}}}))
    };
    let mut rows = vec![row("a", "High"); 6];
    rows.push(row("b", "Low"));
    rows.push(row("a", "High"));
    let mut source = Memory {
        tables: HashMap::from([("securityresources", rows)]),
        ..Memory::new()
    };
    let text = "securityresources | where type == 't' | extend s = tostring(properties.status.severity) \
                | summarize n = count(), high = countif(s == 'High'), names = dcount(name), \
                  most = max(s), set = make_set(name) by type";
    // `run_on` checks that rows cut to `type`, `properties.status.severity` and `name`, and
    // handed over as runs (6, 1, 1), count as the eight rows do.
    let output = run_on(&mut source, text, ALL).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        json!(output.rows),
        json!([["t", 8, 7, 2, "Low", ["a", "b"]]])
    );
}
