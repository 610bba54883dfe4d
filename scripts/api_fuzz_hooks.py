"""Hooks for scripts/api-fuzz: the query strings whose validity no JSON Schema can state.

`$skipToken` is valid only as the server handed it out in a `nextLink`, so it is left out.
`$filter` and `$orderby` follow an OData grammar and name each list's own properties: they are
drawn from expressions the list accepts (or left out), so the run reaches the filtered queries
instead of stopping at 400 InvalidFilter. Their rejection of bad input is tested in
tests/api/filters.rs. The usage period must run forwards (`from` before `to`, each defaulting to
the start of the month and now), which is a rule between two parameters: a period that does not
is turned into one day from its start. A Resource Graph query follows the KQL grammar: valid
requests carry one of a few queries (their refusals are tested in tests/api/resource_graph.rs), and
no `$skipToken`, which only the server hands out. Defender plans are set per subscription: valid
requests to them name a subscription scope (other scopes are refused, tested in tests/api/pricings.rs).
Exemptions and VEX documents have rules between fields and grammars of their own (an expiry in the
future, version ranges, OpenVEX's statements): valid requests carry bodies checked here.

Every request carries the run's Admin token (CROWSNEST_FUZZ_TOKEN) unless it leaves the header
out on purpose. When scripts/api-fuzz has seeded rows (CROWSNEST_FUZZ_SEEDED holds the seeded
image's digest), half of the valid requests are pointed at them, so lists and look-ups answer
with content, and every valid registry notification goes to the seeded registry with its
webhook secret.
"""

import os
import uuid
import zlib
from datetime import datetime, timedelta, timezone

import schemathesis

FILTERS = {
    "subAssessments": [
        "properties/status/severity eq 'High'",
        "properties/status/code ne 'Healthy' and properties/additionalData/repositoryName eq 'app'",
        "properties/status/severity in ('High', 'Medium')",
    ],
    "images": [
        "properties/health/code eq 'Unhealthy'",
        "properties/running eq true or properties/repository eq 'app'",
        "properties/lastPushedAt gt 2026-01-01T00:00:00Z",
    ],
    "scans": [
        "properties/status ne 'Queued'",
        "properties/tag in ('a', null)",
        "properties/createdAt lt 2030-01-01T00:00:00Z and properties/trigger eq 'Api'",
    ],
}
ORDERS = {
    "subAssessments": ["properties/status/severity desc"],
    "images": ["properties/lastPushedAt desc", "properties/repository"],
    "scans": ["properties/createdAt desc", "properties/finishedAt"],
}


def _list_of(path):
    last = path.rstrip("/").rsplit("/", 1)[-1]
    return last if last in FILTERS else None


QUERIES = [
    "securityresources | take 5",
    'securityresources | where type == "microsoft.security/assessments/subassessments" | summarize n = count() by tostring(properties.status.severity)',
    "resources | project id, name",
]


def _positive(case):
    try:
        return case.meta.generation.mode.is_positive
    except AttributeError:
        return False


def _resource_graph(case):
    body = case.body
    if not case.operation.path.endswith("/Microsoft.ResourceGraph/resources") or not isinstance(body, dict):
        return
    if not _positive(case):
        return
    body["query"] = QUERIES[zlib.crc32(repr(body.get("query")).encode()) % len(QUERIES)]
    body.pop("managementGroups", None)
    options = body.get("options")
    if isinstance(options, dict):
        options.pop("$skipToken", None)
        # JSON Schema counts 192.0 as an integer; the server reads integers as JSON writes them.
        for name in ("$top", "$skip"):
            if isinstance(options.get(name), float) and options[name].is_integer():
                options[name] = int(options[name])


def _pricings(case):
    params = case.path_parameters
    if "/pricings" not in case.operation.path or not params or "scope" not in params or not _positive(case):
        return
    params["scope"] = "subscriptions/fuzz"
    body = case.body
    if case.method.upper() == "PUT" and isinstance(body, dict):
        # The plan takes only its tier: a sub-plan, enforcement or another extension is refused
        # (tests/api/pricings.rs), which no schema of Azure's shape can state.
        properties = body.get("properties") if isinstance(body.get("properties"), dict) else {}
        tier = properties.get("pricingTier") if properties.get("pricingTier") in ("Free", "Standard") else "Standard"
        body.clear()
        body["properties"] = {"pricingTier": tier}


EXEMPTION_SCOPES = [
    "subscriptions/fuzz",
    "subscriptions/fuzz/resourceGroups/fuzz",
    "subscriptions/fuzz/resourceGroups/fuzz/providers/Microsoft.ContainerRegistry/registries/fuzzreg",
    "subscriptions/fuzz/resourceGroups/fuzz/providers/Microsoft.ContainerRegistry/registries/fuzzreg/repositories/app",
]
SEVERITIES = ["Low", "Medium", "High", "Critical"]
FUZZ_DIGEST = "sha256:" + "ab" * 32


def _text(value, longest):
    return isinstance(value, str) and value.strip() != "" and len(value) <= longest


def _exemptions(case):
    """Exemptions and VEX documents whose validity no JSON Schema states: an expiry in the future,
    version ranges in their grammar, digests, and an OpenVEX document's own rules (its refusals
    are tested in tests/api/exemptions.rs and tests/api/vex.rs). Valid requests name a scope in
    the seeded subscription and carry a checked body built from the generated values."""
    params = case.path_parameters
    if not params or "exemptionScope" not in params or not _positive(case):
        return
    pick = zlib.crc32(repr(sorted(params.items())).encode())
    params["exemptionScope"] = EXEMPTION_SCOPES[pick % len(EXEMPTION_SCOPES)]
    body = case.body
    if case.operation.path.endswith("/vex"):
        if case.method.upper() == "POST":
            case.body = {
                "@context": "https://openvex.dev/ns/v0.2.0",
                "@id": f"https://example.com/vex/fuzz-{pick % 7}",
                "author": "fuzz",
                "timestamp": "2026-11-01T00:00:00Z",
                "version": 1,
                "statements": [{
                    "vulnerability": {"name": f"CVE-2024-0000{pick % 3}"},
                    "products": [{"@id": f"pkg:oci/app@{FUZZ_DIGEST.replace(':', '%3A')}"}],
                    "status": ["not_affected", "affected", "fixed", "under_investigation"][pick % 4],
                    "justification": "component_not_present",
                }],
            }
        return
    if case.method.upper() != "PUT" or not isinstance(body, dict):
        return
    props = body.get("properties") if isinstance(body.get("properties"), dict) else {}
    generated = props.get("criteria") if isinstance(props.get("criteria"), dict) else {}
    criteria = {}
    ids = [i for i in generated.get("advisoryIds") or [] if _text(i, 200)]
    if ids:
        criteria["advisoryIds"] = ids
    packages = [
        {k: v for k, v in p.items() if k in ("name", "ecosystem") and v is not None}
        for p in generated.get("packages") or []
        if isinstance(p, dict) and _text(p.get("name"), 400)
    ]
    if packages:
        criteria["packages"] = packages
    if generated.get("severities"):
        criteria["severities"] = [SEVERITIES[zlib.crc32(repr(v).encode()) % 4] for v in generated["severities"]]
    if generated.get("fixStatus") in ("FixAvailable", "NoFixAvailable"):
        criteria["fixStatus"] = generated["fixStatus"]
    oses = [o for o in generated.get("osVersions") or [] if _text(o, 100)]
    if oses:
        criteria["osVersions"] = oses
    if generated.get("imageDigests"):
        criteria["imageDigests"] = [FUZZ_DIGEST]
    checked = {
        "criteria": criteria,
        "category": props.get("category") if props.get("category") in ("Waiver", "Mitigated") else "Waiver",
        "justification": props["justification"] if _text(props.get("justification"), 4000) else "fuzzed",
    }
    if _text(props.get("displayName"), 256):
        checked["displayName"] = props["displayName"]
    if props.get("expiresOn") is not None:
        checked["expiresOn"] = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    body.clear()
    body["properties"] = checked


@schemathesis.hook
def before_call(context, case, kwargs):
    """Every phase (examples, coverage, fuzzing, stateful) sends its requests through here."""
    _seeded(case)
    _authorize(case)
    _resource_graph(case)
    _pricings(case)
    _exemptions(case)
    query = case.query
    if not query:
        return
    query.pop("$skipToken", None)
    _forward_period(query)
    kind = _list_of(case.operation.path)
    for name, table in (("$filter", FILTERS), ("$orderby", ORDERS)):
        if name not in query:
            continue
        if kind is None:
            del query[name]
        else:
            # The same generated value always becomes the same expression: runs stay reproducible.
            choices = table[kind]
            query[name] = choices[zlib.crc32(repr(query[name]).encode()) % len(choices)]


def _time(value):
    try:
        t = datetime.fromisoformat(str(value).replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else None


def _forward_period(query):
    if "from" not in query and "to" not in query:
        return
    now = datetime.now(timezone.utc)
    start = _time(query["from"]) if "from" in query else now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = _time(query["to"]) if "to" in query else now
    if start is None or end is None or start < end:
        return
    try:
        query["from"] = start.isoformat()
        query["to"] = (start + timedelta(days=1)).isoformat()
    except OverflowError:
        query["from"] = (end - timedelta(days=1)).isoformat()
        query["to"] = end.isoformat()


def _authorize(case):
    """The Admin token (CROWSNEST_FUZZ_TOKEN) in place of a generated one; a registry notification
    to the seeded registry gets its webhook secret instead. Cases that leave the header out on
    purpose keep it out."""
    headers = case.headers if case.headers is not None else {}
    data = getattr(getattr(getattr(case, "meta", None), "phase", None), "data", None)
    if "Authorization" not in headers and getattr(data, "parameter", None) == "Authorization":
        return
    token = os.environ["CROWSNEST_FUZZ_TOKEN"]
    secret = os.environ.get("CROWSNEST_FUZZ_WEBHOOK_SECRET")
    params = case.path_parameters or {}
    if case.operation.path.endswith("/registryEvents") and secret and params.get("registryName") == "fuzzreg":
        token = secret
    headers["Authorization"] = "Bearer " + token
    case.headers = headers


SEEDED_SCOPES = [
    "subscriptions/fuzz",
    "subscriptions/fuzz/resourceGroups/fuzz",
    "subscriptions/fuzz/resourceGroups/fuzz/providers/Microsoft.ContainerRegistry/registries/fuzzreg",
]


def _seeded(case):
    digest = os.environ.get("CROWSNEST_FUZZ_SEEDED")
    params = case.path_parameters
    if not digest or not params:
        return
    try:
        positive = case.meta.generation.mode.is_positive
    except AttributeError:
        positive = False
    # Half of them, chosen by the generated values so that a run repeats itself.
    pick = zlib.crc32(repr(sorted(params.items())).encode())
    webhook = case.operation.path.endswith("/registryEvents")
    if not positive or (pick % 2 and not webhook):
        return

    seeded = {
        "subscriptionId": "fuzz",
        "resourceGroupName": "fuzz",
        "registryName": "fuzzreg",
        "scope": SEEDED_SCOPES[pick // 2 % len(SEEDED_SCOPES)],
        "digest": digest,
        # As scripts/api_fuzz_seed.py names them.
        "subAssessmentName": str(uuid.uuid5(uuid.NAMESPACE_URL, f"crowsnest-fuzz-{pick % 12}")),
        "id": "CVE-2024-00001",
    }
    if case.method.upper() == "DELETE":
        # Keep the seeded registry for the rest of the run.
        seeded.pop("registryName")
    for name, value in seeded.items():
        if name in params:
            params[name] = value
    body = case.body
    if case.operation.path.endswith("/scans") and isinstance(body, dict) and isinstance(body.get("image"), str):
        # The seeded registry's host, so that the scan is queued rather than 404 RegistryNotConnected.
        image = body["image"].strip()
        if "/" in image:
            body["image"] = "registry.fuzz.example/" + image.split("/", 1)[1]
