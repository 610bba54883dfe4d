//! What the derived OpenAPI document cannot say by itself, written into it from the code that
//! decides it: each operation's `api-version`s, and the pattern, enum, bounds or format of
//! every path, query, header and body string the edge parses (from the parsers in `domain/`),
//! so a client generated from the document sends only what the server accepts.
//!
//! Free-form strings carry `domain::pattern::STORABLE` where the server refuses a NUL; the
//! webhook and the advisory import are left without it because they take NUL (the event or
//! record is rejected, the request answered 200). `$filter`, `$orderby` (a grammar) and
//! `$skipToken` (only as handed out in a `nextLink`) cannot be written as a pattern.

use serde_json::{Value, json};
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, PathItem};
use utoipa::openapi::schema::{
    AllOfBuilder, KnownFormat, Object, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{OpenApi, RefOr, Required};

use super::api_version;
use crate::domain::pattern::{self, STORABLE};
use crate::domain::{
    AssessmentKey, Digest, ExemptionScope, LoginServer, PricingPlan, PricingTier, RegistryName,
    RepositoryName, ResourceGroupName, ScanStatus, ScanTrigger, Scope, SubscriptionId,
};
use crate::scanner::registry::ImageReference;

pub struct Contract;

/// The api-versions of an operation's tag (the tags' descriptions say the same).
fn version_of(operation: &Operation) -> Option<&'static [&'static str]> {
    match operation.tags.as_deref()?.first()?.as_str() {
        "SubAssessments" => Some(std::slice::from_ref(&api_version::SUB_ASSESSMENTS)),
        "Assessments" => Some(std::slice::from_ref(&api_version::ASSESSMENTS)),
        "Registries" | "Images" | "Scans" | "Advisories" | "Exemptions" => {
            Some(std::slice::from_ref(&api_version::CROWSNEST))
        }
        "Pricings" => Some(std::slice::from_ref(&api_version::PRICINGS)),
        "ResourceGraph" => Some(api_version::RESOURCE_GRAPH),
        _ => None,
    }
}

/// A string's constraints, as they are merged into its schema.
#[derive(Default)]
struct Rule {
    pattern: Option<String>,
    enum_values: Option<Vec<Value>>,
    format: Option<KnownFormat>,
    min_length: Option<usize>,
    max_length: Option<usize>,
    /// Further patterns the value must also match (bounds a single pattern cannot carry).
    also: Vec<String>,
    /// Shows that a parameter's `/` are its own (a scope is several path segments).
    example: Option<Value>,
}

fn pattern(p: impl Into<String>) -> Rule {
    Rule {
        pattern: Some(p.into()),
        ..Rule::default()
    }
}

fn one_of(values: impl IntoIterator<Item = &'static str>) -> Rule {
    Rule {
        enum_values: Some(values.into_iter().map(|v| json!(v)).collect()),
        ..Rule::default()
    }
}

/// The rule of a parameter, by its name (each name means the same on every route).
fn parameter_rule(name: &str) -> Option<Rule> {
    Some(match name {
        "subscriptionId" => pattern(SubscriptionId::PATTERN),
        "resourceGroupName" => pattern(ResourceGroupName::PATTERN),
        "registryName" => pattern(RegistryName::PATTERN),
        "scope" => Rule {
            example: Some(json!("subscriptions/prod/resourceGroups/web")),
            ..pattern(Scope::pattern())
        },
        "exemptionScope" => Rule {
            example: Some(json!(
                "subscriptions/prod/resourceGroups/web/providers/Microsoft.ContainerRegistry/registries/acr/repositories/team/app"
            )),
            ..pattern(ExemptionScope::pattern())
        },
        "exemptionName" => pattern(super::exemptions::NAME_PATTERN),
        // Compared without regard to case, so a pattern rather than an enum.
        "assessmentName" => pattern(format!(
            "^(?:{})$",
            AssessmentKey::ALL
                .map(|key| pattern::case_insensitive(key.as_str()))
                .join("|")
        )),
        "subAssessmentName" => pattern(pattern::UUID),
        // Compared without regard to case, so a pattern rather than an enum.
        "pricingName" => pattern(format!(
            "^({})$",
            PricingPlan::ALL
                .map(|p| pattern::case_insensitive(p.as_str()))
                .join("|")
        )),
        "digest" => pattern(Digest::PATTERN),
        "repository" => Rule {
            max_length: Some(RepositoryName::MAX_LEN),
            ..pattern(RepositoryName::PATTERN)
        },
        "cluster" => pattern(super::running_images::CLUSTER_PATTERN),
        // A source name is looked up, not parsed: unknown ones are 404.
        "scanId" | "id" | "name" => Rule {
            min_length: Some(1),
            ..pattern(STORABLE)
        },
        "status" => one_of(ScanStatus::ALL.map(ScanStatus::as_str)),
        "trigger" => one_of(ScanTrigger::ALL.map(ScanTrigger::as_str)),
        "from" | "to" => Rule {
            format: Some(KnownFormat::DateTime),
            ..Rule::default()
        },
        "$filter" | "$orderby" | "$skipToken" => pattern(STORABLE),
        "Idempotency-Key" => pattern(super::scans::IDEMPOTENCY_KEY_PATTERN),
        _ => return None,
    })
}

/// The rules of request-body properties: (schema, property) → rule.
fn property_rule(schema: &str, property: &str) -> Option<Rule> {
    Some(match (schema, property) {
        ("RegistryPutProperties", "loginServer") => Rule {
            max_length: Some(LoginServer::MAX_LEN),
            also: vec![LoginServer::HOST_LENGTH_PATTERN.to_owned()],
            ..pattern(LoginServer::pattern())
        },
        ("ScanSubmission", "image") => Rule {
            also: ImageReference::length_patterns().into(),
            ..pattern(ImageReference::pattern())
        },
        ("PodList", "kind") => one_of(super::running_images::POD_LIST_KINDS),
        ("PricingUpdateProperties", "pricingTier") => {
            one_of(PricingTier::ALL.map(PricingTier::as_str))
        }
        ("PricingUpdateProperties", "enforce") => one_of(["False"]),
        ("PricingExtension", "isEnabled") => one_of(["True", "False"]),
        ("RegistryCredentials", "username" | "token") => pattern(pattern::not_blank()),
        ("RegistryCredentials", "password") => Rule {
            min_length: Some(1),
            ..pattern(STORABLE)
        },
        _ => return None,
    })
}

/// Request bodies whose every string is refused with a NUL (`api::input`).
const STORABLE_BODIES: [&str; 7] = [
    "RegistryPut",
    "RegistryPutProperties",
    "ScanSubmission",
    "PodList",
    "Pod",
    "PodMetadata",
    "ContainerStatus",
];

impl utoipa::Modify for Contract {
    fn modify(&self, doc: &mut OpenApi) {
        for item in doc.paths.paths.values_mut() {
            for operation in operations(item) {
                let version = version_of(operation);
                for parameter in operation.parameters.iter_mut().flatten() {
                    constrain_parameter(parameter, version);
                }
            }
        }
        let Some(components) = doc.components.as_mut() else {
            return;
        };
        for (name, schema) in components.schemas.iter_mut() {
            let RefOr::T(schema) = schema else { continue };
            let storable =
                STORABLE_BODIES.contains(&name.as_str()) || name == "RegistryCredentials";
            constrain_schema(name, schema, storable);
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

fn constrain_parameter(parameter: &mut Parameter, version: Option<&'static [&'static str]>) {
    let rule = if parameter.name == "api-version" {
        let Some(version) = version else { return };
        parameter.required = Required::True;
        one_of(version.iter().copied())
    } else {
        match parameter_rule(&parameter.name) {
            Some(rule) => rule,
            None => return,
        }
    };
    // A header or query string the client may leave out is still a string when sent.
    let mut object = match parameter.schema.take() {
        Some(RefOr::T(Schema::Object(object))) => object,
        _ => Object::default(),
    };
    object.schema_type = SchemaType::Type(Type::String);
    if let Some(example) = rule.example.clone() {
        *parameter = ParameterBuilder::from(std::mem::take(parameter))
            .example(Some(example))
            .build();
    }
    apply(&mut object, rule);
    parameter.schema = Some(RefOr::T(Schema::Object(object)));
}

fn apply(object: &mut Object, rule: Rule) {
    if rule.pattern.is_some() {
        object.pattern = rule.pattern;
    }
    if rule.enum_values.is_some() {
        object.enum_values = rule.enum_values;
    }
    if let Some(format) = rule.format {
        object.format = Some(SchemaFormat::KnownFormat(format));
    }
    if rule.min_length.is_some() {
        object.min_length = rule.min_length;
    }
    if rule.max_length.is_some() {
        object.max_length = rule.max_length;
    }
}

/// Walks one component schema (and the objects inline in it: `oneOf` arms, nullable fields).
fn constrain_schema(name: &str, schema: &mut Schema, storable: bool) {
    match schema {
        Schema::Object(object) => {
            for (property, value) in object.properties.iter_mut() {
                constrain_property(name, property, value, storable);
            }
        }
        Schema::OneOf(one_of) => {
            for arm in one_of.items.iter_mut() {
                if let RefOr::T(arm) = arm {
                    constrain_schema(name, arm, storable);
                }
            }
        }
        _ => {}
    }
}

fn constrain_property(schema: &str, property: &str, value: &mut RefOr<Schema>, storable: bool) {
    let RefOr::T(value) = value else { return };
    match value {
        Schema::Object(object) if is_string(object) => {
            if let Some(mut rule) = property_rule(schema, property) {
                let also = std::mem::take(&mut rule.also);
                apply(object, rule);
                if !also.is_empty() {
                    let mut all = AllOfBuilder::new().item(object.clone());
                    for p in also {
                        all = all.item(
                            ObjectBuilder::new()
                                .schema_type(Type::String)
                                .pattern(Some(p)),
                        );
                    }
                    *value = Schema::AllOf(all.build());
                }
            } else if storable && object.pattern.is_none() && object.enum_values.is_none() {
                object.pattern = Some(STORABLE.to_owned());
            }
        }
        Schema::OneOf(one_of) => {
            for arm in one_of.items.iter_mut() {
                constrain_property(schema, property, arm, storable);
            }
        }
        _ => {}
    }
}

fn is_string(object: &Object) -> bool {
    match &object.schema_type {
        SchemaType::Type(t) => *t == Type::String,
        SchemaType::Array(types) => types.contains(&Type::String),
        SchemaType::AnyValue => false,
    }
}
