//! The OpenAPI document against the code it describes: each pattern against the parser it is
//! written from (on chosen samples, on strings generated from the pattern, as a fuzzer or a
//! generated client would send them, and on random strings over the grammar's alphabet), and
//! each operation's `api-version` against the server.

use crowsnest::api::running_images::{CLUSTER_PATTERN, valid_cluster};
use crowsnest::api::scans::{IDEMPOTENCY_KEY_PATTERN, valid_idempotency_key};
use crowsnest::domain::pattern::{self, STORABLE};
use crowsnest::domain::{
    Digest, LoginServer, RegistryName, RepositoryName, ResourceGroupName, Role, Scope,
    SubscriptionId, text,
};
use crowsnest::scanner::registry::ImageReference;
use proptest::prelude::*;
use proptest::string::string_regex;
use proptest::test_runner::{Config, TestRunner};
use regex::Regex;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::support::app::*;
use crate::support::database::Backend;

backend_tests!(every_operation_takes_the_api_version_its_document_names);

/// One pattern (and the further patterns and length it comes with) and its parser.
struct Case {
    name: &'static str,
    patterns: Vec<String>,
    max_len: Option<usize>,
    parser: fn(&str) -> bool,
    accepted: Vec<String>,
    refused: Vec<String>,
    /// Characters the random strings are made of: the grammar's own and a few others.
    alphabet: &'static str,
}

impl Case {
    fn matches(&self, regexes: &[Regex], s: &str) -> bool {
        regexes.iter().all(|r| r.is_match(s)) && self.max_len.is_none_or(|n| s.chars().count() <= n)
    }
}

fn image_accepted(s: &str) -> bool {
    // What the scans API does with `image`: trim, parse, and take the host as a login server.
    ImageReference::parse(s.trim()).is_ok_and(|r| LoginServer::parse(&r.registry).is_ok())
}

fn cases() -> Vec<Case> {
    let digest = format!("sha256:{}", "a".repeat(64));
    vec![
        Case {
            name: "SubscriptionId",
            patterns: vec![SubscriptionId::PATTERN.into()],
            max_len: None,
            parser: |s| SubscriptionId::parse(s).is_ok(),
            accepted: vec!["prod".into(), "A-1_b".into(), "a".repeat(64)],
            refused: vec!["".into(), "-a".into(), "a/b".into(), "a".repeat(65), "é".into()],
            alphabet: "aZ09-_./ é",
        },
        Case {
            name: "ResourceGroupName",
            patterns: vec![ResourceGroupName::PATTERN.into()],
            max_len: None,
            parser: |s| ResourceGroupName::parse(s).is_ok(),
            accepted: vec!["My.Rg(1)".into(), ".a".into(), "a".repeat(90)],
            refused: vec!["".into(), "rg.".into(), "a b".into(), "a".repeat(91)],
            alphabet: "aZ0_-.() /",
        },
        Case {
            name: "RegistryName",
            patterns: vec![RegistryName::PATTERN.into()],
            max_len: None,
            parser: |s| RegistryName::parse(s).is_ok(),
            accepted: vec!["MyReg".into(), "a-b".into(), "a".repeat(63)],
            refused: vec!["-a".into(), "a-".into(), "a_b".into(), "a".repeat(64)],
            alphabet: "aZ0-_.",
        },
        Case {
            name: "RepositoryName",
            patterns: vec![RepositoryName::PATTERN.into()],
            max_len: Some(RepositoryName::MAX_LEN),
            parser: |s| RepositoryName::parse(s).is_ok(),
            accepted: vec!["library/debian".into(), "a__b".into(), "x---y".into(), "a".repeat(255)],
            refused: vec!["A".into(), "a___b".into(), "a//b".into(), "/a".into(), "a".repeat(256)],
            alphabet: "ab09._-/A",
        },
        Case {
            name: "Digest",
            patterns: vec![Digest::PATTERN.into()],
            max_len: None,
            parser: |s| Digest::parse(s).is_ok(),
            accepted: vec![digest.clone(), format!("sha512:{}", "0".repeat(128))],
            refused: vec![format!("sha256:{}", "A".repeat(64)), format!("{digest}0"), "sha256:".into()],
            alphabet: "af09:A",
        },
        Case {
            name: "LoginServer",
            patterns: vec![LoginServer::pattern(), LoginServer::HOST_LENGTH_PATTERN.into()],
            max_len: Some(LoginServer::MAX_LEN),
            parser: |s| LoginServer::parse(s).is_ok(),
            accepted: vec![
                "registry.example.com".into(),
                "127.0.0.1:5000".into(),
                "[::1]:443".into(),
                "[::ffff:1.2.3.4]".into(),
                "[1:2:3:4:5:6:7::]".into(),
                format!("{0}.{0}.{0}.{1}:65535", "a".repeat(63), "a".repeat(61)),
            ],
            refused: vec![
                "x:0".into(),
                "x:65536".into(),
                "x:+80".into(),
                "x:080".into(),
                "[::1]x".into(),
                "[1.2.3.4::]".into(),
                "a..b".into(),
                format!("{0}.{0}.{0}.{1}", "a".repeat(63), "a".repeat(62)),
            ],
            alphabet: "a0:.[]-f1+",
        },
        Case {
            name: "Scope",
            patterns: vec![Scope::pattern()],
            max_len: None,
            parser: |s| Scope::parse(s).is_ok(),
            accepted: vec![
                "subscriptions/s1".into(),
                "/SUBSCRIPTIONS/s1/resourcegroups/RG".into(),
                "subscriptions/s/resourceGroups/r/providers/microsoft.containerregistry/Registries/x".into(),
            ],
            refused: vec![
                "subscriptions".into(),
                "subscriptions/s1/".into(),
                "subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm".into(),
            ],
            alphabet: "subscriptions/",
        },
        Case {
            name: "ImageReference",
            patterns: [vec![ImageReference::pattern()], ImageReference::length_patterns().into()].concat(),
            max_len: None,
            parser: image_accepted,
            accepted: vec![
                "registry.example.com/team/api:1.4.2".into(),
                format!(" localhost/a@{digest}\n"),
                "[::1]:5000/a:b".into(),
                "a:1/b".into(),
                format!("{}.{}/{}", "a".repeat(63), "b".repeat(63), "c".repeat(255)),
            ],
            refused: vec![
                "debian:12".into(),
                "LOCALHOST/a".into(),
                "x.y/A".into(),
                "x.y/a:-b".into(),
                "[::ffff:1.2.3.4]/a".into(),
                format!("x.y/{}", "c".repeat(256)),
                format!("{0}.{0}.{0}.{0}/a", "a".repeat(63)),
                "x.y:080/a".into(),
            ],
            alphabet: "ax0.:/@[]-_ ",
        },
        Case {
            name: "UUID",
            patterns: vec![pattern::UUID.into()],
            max_len: None,
            parser: |s| uuid::Uuid::parse_str(s).is_ok(),
            accepted: vec![
                "dbd0cb49-b563-45e7-9724-889e799fa648".into(),
                "DBD0CB49B56345E79724889E799FA648".into(),
                "{dbd0cb49-b563-45e7-9724-889e799fa648}".into(),
                "urn:uuid:dbd0cb49-b563-45e7-9724-889e799fa648".into(),
            ],
            refused: vec!["dbd0cb49-b563-45e7-9724-889e799fa64".into(), "g".repeat(32)],
            alphabet: "a0-{}",
        },
        Case {
            name: "cluster",
            patterns: vec![CLUSTER_PATTERN.into()],
            max_len: None,
            parser: valid_cluster,
            accepted: vec!["prod-eu.1_a".into(), "a".repeat(63)],
            refused: vec!["".into(), "a b".into(), "a".repeat(64)],
            alphabet: "a0._- /",
        },
        Case {
            name: "Idempotency-Key",
            patterns: vec![IDEMPOTENCY_KEY_PATTERN.into()],
            max_len: None,
            parser: valid_idempotency_key,
            accepted: vec!["ci-build-4711".into(), "~".repeat(256)],
            refused: vec!["".into(), "a b".into(), "~".repeat(257), "é".into()],
            alphabet: "a~ \té",
        },
        Case {
            name: "storable",
            patterns: vec![STORABLE.into()],
            max_len: None,
            parser: text::storable,
            accepted: vec!["".into(), "a\u{1}b".into()],
            refused: vec!["a\0".into()],
            alphabet: "a\0\u{1}",
        },
        Case {
            name: "not blank",
            patterns: vec![pattern::not_blank()],
            max_len: None,
            parser: |s| text::storable(s) && !s.trim().is_empty(),
            accepted: vec![" a ".into(), "\u{1c}".into()],
            refused: vec!["".into(), " \u{3000}\u{85}".into(), "a\0".into()],
            alphabet: "a \u{3000}\u{85}\u{1c}\0\t",
        },
    ]
}

#[test]
fn each_pattern_matches_what_its_parser_accepts() {
    for case in cases() {
        let regexes: Vec<Regex> = case
            .patterns
            .iter()
            .map(|p| Regex::new(p).unwrap())
            .collect();
        for s in &case.accepted {
            assert!((case.parser)(s), "{}: the parser refuses {s:?}", case.name);
            assert!(
                case.matches(&regexes, s),
                "{}: the pattern refuses {s:?}",
                case.name
            );
        }
        for s in &case.refused {
            assert!(!(case.parser)(s), "{}: the parser accepts {s:?}", case.name);
            assert!(
                !case.matches(&regexes, s),
                "{}: the pattern accepts {s:?}",
                case.name
            );
        }
    }
}

/// Strings generated from the first pattern (what a fuzzer sends) that the document allows are
/// accepted by the parser.
#[test]
fn strings_generated_from_each_pattern_are_accepted() {
    for case in cases() {
        let regexes: Vec<Regex> = case
            .patterns
            .iter()
            .map(|p| Regex::new(p).unwrap())
            .collect();
        // proptest generates from the pattern without its anchors (the whole string is generated).
        let strategy = string_regex(pattern::inner(&case.patterns[0])).unwrap();
        let mut runner = TestRunner::new(Config {
            cases: 256,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&strategy, |s| {
            if case.matches(&regexes, &s) {
                prop_assert!(
                    (case.parser)(&s),
                    "{}: the document allows {s:?}",
                    case.name
                );
            }
            Ok(())
        });
        if let Err(e) = result {
            panic!("{}: {e}", case.name);
        }
    }
}

/// Random strings over each grammar's alphabet: the pattern and the parser agree on every one.
#[test]
fn patterns_and_parsers_agree_on_random_strings() {
    for case in cases() {
        let regexes: Vec<Regex> = case
            .patterns
            .iter()
            .map(|p| Regex::new(p).unwrap())
            .collect();
        let alphabet: Vec<char> = case.alphabet.chars().collect();
        let strategy = proptest::collection::vec(proptest::sample::select(alphabet), 0..24)
            .prop_map(|chars| chars.into_iter().collect::<String>());
        let mut runner = TestRunner::new(Config {
            cases: 3000,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&strategy, |s| {
            prop_assert_eq!(
                case.matches(&regexes, &s),
                (case.parser)(&s),
                "{}: pattern and parser disagree on {:?}",
                case.name,
                s
            );
            Ok(())
        });
        if let Err(e) = result {
            panic!("{}: {e}", case.name);
        }
    }
}

/// A body each operation reads without complaint, so that only its `api-version` is in question.
fn body_of(path: &str) -> Value {
    match path.rsplit('/').next().unwrap_or_default() {
        "scans" => json!({"image": "registry.example.com/team/api:1"}),
        "runningImages" => json!({"kind": "List", "items": []}),
        "registryEvents" => json!({"events": []}),
        "advisories:import" => json!([]),
        "{pricingName}" => json!({"properties": {"pricingTier": "Standard"}}),
        "{exemptionName}" => json!({"properties": {"category": "Waiver", "justification": "x"}}),
        "vex" => {
            json!({"@context": "https://openvex.dev/ns/v0.2.0", "@id": "x", "author": "a", "timestamp": "2026-01-01T00:00:00Z", "statements": [{"vulnerability": {"name": "CVE-2026-1"}, "products": [{"@id": "pkg:deb/debian/a@1"}], "status": "affected"}]})
        }
        "resources" => json!({"subscriptions": ["s1"], "query": "resources | take 1"}),
        _ => json!({"properties": {"loginServer": "registry.example.com"}}),
    }
}

/// A value for each path parameter the document names.
fn path_value(name: &str) -> &'static str {
    match name {
        "subscriptionId" => "s1",
        "resourceGroupName" => "rg",
        "registryName" => "reg",
        "scope" => "subscriptions/s1",
        "assessmentName" => KEY,
        "subAssessmentName" => "00000000-0000-0000-0000-000000000000",
        "digest" => "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "cluster" => "c1",
        "pricingName" => "Containers",
        "exemptionScope" => "subscriptions/s1/resourceGroups/rg",
        "exemptionName" => "waiver",
        "scanId" | "id" | "name" => "x",
        other => panic!("no sample for the path parameter {other}"),
    }
}

/// Each operation with an `api-version` requires it and takes the values its document names
/// (one, but two for Resource Graph): without it the answer is `MissingApiVersionParameter`,
/// with another one `InvalidApiVersionParameter`, and with a documented one neither.
async fn every_operation_takes_the_api_version_its_document_names(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.jobs.queue.workers = 0).await;
    let token = app.token("*", Role::Admin);
    let doc: Value = serde_json::from_str(&crowsnest::api::openapi_json()).unwrap();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let parameters = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let Some(version) = parameters.iter().find(|p| p["name"] == "api-version") else {
                continue;
            };
            assert_eq!(version["required"], true, "{method} {path}");
            let values = version["schema"]["enum"].as_array().unwrap();
            let several = path == "/providers/Microsoft.ResourceGraph/resources";
            assert_eq!(values.len(), if several { 2 } else { 1 }, "{method} {path}");
            let mut concrete = path.clone();
            for p in parameters.iter().filter(|p| p["in"] == "path") {
                let name = p["name"].as_str().unwrap();
                concrete = concrete.replace(&format!("{{{name}}}"), path_value(name));
            }
            let documented = values
                .iter()
                .map(|v| (format!("?api-version={}", v.as_str().unwrap()), None));
            for (query, expected) in [
                (String::new(), Some("MissingApiVersionParameter")),
                (
                    "?api-version=2000-01-01".to_owned(),
                    Some("InvalidApiVersionParameter"),
                ),
            ]
            .into_iter()
            .chain(documented)
            {
                let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let response = app
                    .client
                    .request(method.clone(), app.url(&format!("{concrete}{query}")))
                    .bearer_auth(&token)
                    .json(&body_of(path))
                    .send()
                    .await
                    .unwrap();
                let (status, body) = json_of(response).await;
                let code = body["error"]["code"].as_str().unwrap_or_default();
                match expected {
                    Some(expected) => assert_eq!(
                        (status, code),
                        (400, expected),
                        "{method} {concrete}{query}: {body}"
                    ),
                    None => assert!(
                        !code.contains("ApiVersion"),
                        "{method} {concrete}{query}: {status} {body}"
                    ),
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 35, "operations with an api-version");
}
