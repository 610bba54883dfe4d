#!/usr/bin/env python3
"""Reads findings from a running Crowsnest with the official Azure SDK for Python (azure-mgmt-security).

Seeds `--count` findings for one registry straight into the service's SQLite database, then lists them
(following nextLink), lists them under the container registry assessment key, and gets one, checking
that the SDK's models come back fully populated; then lists and gets them under the MDVM key, whose
`AzureContainerRegistryVulnerability` additional data 7.0.0 does not know (it reads it as its base
`AdditionalData`, without error). Then reads and sets the subscription's Defender plan
(`pricings.list/get/update`, api-version 2024-01-01) with an Admin token. Exits non-zero on the first
mismatch.
"""

import argparse
import json
import sqlite3
import sys
import time
import uuid

from azure.core.exceptions import HttpResponseError
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.mgmt.security import SecurityCenter
from azure.mgmt.security.v2019_01_01_preview.models import (
    AdditionalData,
    AzureResourceDetails,
    ContainerRegistryVulnerabilityProperties,
)

KEY = "dbd0cb49-b563-45e7-9724-889e799fa648"
MDVM_KEY = "c0b7cfc6-3172-465a-b378-53c7ff2cc0d5"


class StaticBearer(SansIOHTTPPolicy):
    """Sends a Crowsnest token; the SDK's own policy insists on HTTPS and Azure AD."""

    def __init__(self, token):
        super().__init__()
        self.token = token

    def on_request(self, request):
        request.http_request.headers["Authorization"] = f"Bearer {self.token}"


class NoCredential:
    def get_token(self, *scopes, **kwargs):  # never called: StaticBearer replaces the auth policy
        raise RuntimeError("unused")


def seed(db, subscription, resource_group, registry, count):
    conn = sqlite3.connect(db)
    (registry_id,) = conn.execute(
        "SELECT id FROM registries WHERE subscription_id=? AND resource_group=? AND name=?",
        (subscription, resource_group, registry),
    ).fetchone()
    now = int(time.time() * 1_000_000)
    image_id = str(uuid.uuid4())
    digest = "sha256:" + "ab" * 32
    conn.execute(
        "INSERT INTO images (id, registry_id, subscription_id, repository, digest, health, running, created_at)"
        " VALUES (?, ?, ?, 'library/debian', ?, 'Unhealthy', FALSE, ?)",
        (image_id, registry_id, subscription, digest, now),
    )
    names = []
    for i in range(count):
        name = str(uuid.uuid4())
        names.append(name)
        advisory = f"CVE-2024-{i:05d}"
        row = {
            "id": name,
            "subscription_id": subscription,
            "resource_group": resource_group,
            "registry_id": registry_id,
            "registry_name": registry,
            "image_id": image_id,
            "repository": "library/debian",
            "image_digest": digest,
            "advisory_id": advisory,
            "package_name": "openssl",
            "installed_version": "3.0.11-1~deb12u1",
            "fixed_version": "3.0.11-1~deb12u2",
            "ecosystem": "Debian:12",
            "category": "Debian",
            "severity": "Critical" if i % 2 else "Medium",
            "severity_source": "cvss3",
            "cvss2_base": None,
            "cvss3_base": 9.8 if i % 2 else 5.3,
            "display_name": f"openssl: {advisory}",
            "description": f"{advisory} in openssl",
            "remediation": "Upgrade openssl from 3.0.11-1~deb12u1 to 3.0.11-1~deb12u2 or later.",
            "impact": "High",
            "cves": json.dumps([{"title": advisory, "link": f"https://nvd.nist.gov/vuln/detail/{advisory}"}]),
            "vendor_references": json.dumps(
                [{"title": "DSA-5532-1", "link": "https://security-tracker.debian.org/tracker/DSA-5532-1"}]
            ),
            "published_at": now,
            "patchable": True,
            "layer_digest": "sha256:" + "cd" * 32,
            "first_seen": now,
            "last_seen": now,
            "resolved_at": None,
            "fingerprint": "",  # only rescans compare it
            "severity_rank": 4 if i % 2 else 2,
            "mdvm_vulnerabilities": 1,  # its one CVE: one MDVM sub-assessment
        }
        columns = ", ".join(row)
        placeholders = ", ".join("?" for _ in row)
        conn.execute(f"INSERT INTO findings ({columns}) VALUES ({placeholders})", tuple(row.values()))
        # As the store writes them with the finding: the MDVM sub-assessment's derived name.
        conn.execute(
            "INSERT INTO mdvm_names (name, finding_id, vulnerability) VALUES (?, ?, ?)",
            (str(uuid.uuid5(uuid.UUID(name), advisory)), name, advisory),
        )
    conn.commit()
    return names, digest


def check(condition, message):
    if not condition:
        print(f"FAIL: {message}", file=sys.stderr)
        sys.exit(1)


def check_pricings(args):
    """pricings.list/get/update as azure-mgmt-security 7.0.0 calls them: (scope_id, pricing_name)."""
    from azure.mgmt.security.v2024_01_01.models import Extension, Pricing

    admin = SecurityCenter(
        NoCredential(), args.subscription, base_url=args.url, authentication_policy=StaticBearer(args.admin_token)
    )
    reader = SecurityCenter(
        NoCredential(), args.subscription, base_url=args.url, authentication_policy=StaticBearer(args.token)
    )
    scope = f"subscriptions/{args.subscription}"

    listed = reader.pricings.list(scope)
    check([p.name for p in listed.value] == ["Containers", "ContainerRegistry"], f"list {listed.value}")
    got = reader.pricings.get(scope, "Containers")
    check(got.pricing_tier == "Standard", f"default tier {got.pricing_tier}")
    check(got.type == "Microsoft.Security/pricings", f"type {got.type}")
    check(got.id == f"/subscriptions/{args.subscription}/providers/Microsoft.Security/pricings/Containers", got.id)
    check(got.free_trial_remaining_time is not None, "freeTrialRemainingTime")
    check(got.resources_coverage_status == "FullyCovered", f"coverage {got.resources_coverage_status}")
    check(got.deprecated is False, f"deprecated {got.deprecated}")

    free = admin.pricings.update(scope, "Containers", Pricing(pricing_tier="Free"))
    check(free.pricing_tier == "Free" and free.enablement_time is None, f"update Free {free}")
    check(free.extensions[0].is_enabled == "False", f"extension {free.extensions}")
    check(reader.pricings.get(scope, "Containers").pricing_tier == "Free", "Free not kept")
    try:
        reader.pricings.update(scope, "Containers", Pricing(pricing_tier="Standard"))
        check(False, "a Contributor changed the plan")
    except HttpResponseError as e:
        check(e.status_code == 403, f"Contributor update: {e.status_code}")

    standard = admin.pricings.update(
        scope,
        "Containers",
        Pricing(
            pricing_tier="Standard",
            extensions=[Extension(name="ContainerRegistriesVulnerabilityAssessments", is_enabled="True")],
        ),
    )
    check(standard.pricing_tier == "Standard" and standard.enablement_time is not None, f"update Standard {standard}")
    legacy = reader.pricings.get(scope, "ContainerRegistry")
    check(legacy.pricing_tier == "Standard" and legacy.deprecated and legacy.replaced_by == ["Containers"], f"legacy {legacy}")
    filtered = reader.pricings.list(scope, filter="name in (Containers,KeyVaults)")
    check([p.name for p in filtered.value] == ["Containers"], f"filtered {filtered.value}")
    try:
        reader.pricings.get(scope, "VirtualMachines")
        check(False, "another plan was found")
    except HttpResponseError as e:
        check(e.status_code == 404 and e.error.code == "PricingNotFound", f"VirtualMachines: {e.status_code}")
    print("azure-mgmt-security 7.0.0 listed, read and set the Defender plan (pricings.list/get/update): as expected")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True, help="a Contributor token for the subscription")
    parser.add_argument("--admin-token", required=True, help="an Admin token for the subscription (pricings.update)")
    parser.add_argument("--db", required=True, help="the service's SQLite file")
    parser.add_argument("--subscription", default="sdk-sub")
    parser.add_argument("--resource-group", default="sdk-rg")
    parser.add_argument("--registry", default="sdkreg")
    parser.add_argument("--count", type=int, default=150)
    args = parser.parse_args()

    names, digest = seed(args.db, args.subscription, args.resource_group, args.registry, args.count)
    client = SecurityCenter(
        NoCredential(), args.subscription, base_url=args.url, authentication_policy=StaticBearer(args.token)
    )
    registry_scope = (
        f"subscriptions/{args.subscription}/resourceGroups/{args.resource_group}"
        f"/providers/Microsoft.ContainerRegistry/registries/{args.registry}"
    )

    listed = list(client.sub_assessments.list_all(f"subscriptions/{args.subscription}"))
    check(sorted(s.name for s in listed) == sorted(names), f"list_all returned {len(listed)} of {len(names)} findings")
    by_key = list(client.sub_assessments.list(f"/subscriptions/{args.subscription}", KEY))
    check(len(by_key) == len(names), f"list(key) returned {len(by_key)}")

    got = client.sub_assessments.get(registry_scope, KEY, names[1])
    check(got.name == names[1], "get returned another finding")
    check(got.type == "Microsoft.Security/assessments/subAssessments", f"type {got.type}")
    check(got.id.endswith(f"/assessments/{KEY}/subAssessments/{names[1]}"), f"id {got.id}")
    check(got.id_properties_id == "CVE-2024-00001", f"properties.id {got.id_properties_id}")
    check(got.display_name == "openssl: CVE-2024-00001", f"displayName {got.display_name}")
    check(got.status.code == "Unhealthy", f"status.code {got.status.code}")
    check(got.status.severity == "High", f"status.severity {got.status.severity} (Critical shows as High)")
    check(got.remediation.startswith("Upgrade openssl"), f"remediation {got.remediation}")
    check(got.category == "Debian", f"category {got.category}")
    check(got.time_generated is not None and got.time_generated.year >= 2024, f"timeGenerated {got.time_generated}")
    check(isinstance(got.resource_details, AzureResourceDetails), f"resourceDetails {type(got.resource_details)}")
    check(got.resource_details.id.endswith(f"/repositories/library/debian/images/{digest}"), got.resource_details.id)
    data = got.additional_data
    check(isinstance(data, ContainerRegistryVulnerabilityProperties), f"additionalData is {type(data).__name__}")
    check(data.assessed_resource_type == "ContainerRegistryVulnerability", data.assessed_resource_type)
    check(data.type == "Vulnerability", f"additionalData.type {data.type}")
    check(data.cvss["3.0"].base == 9.8, f"cvss {data.cvss}")
    check(data.patchable is True, "patchable")
    check([c.title for c in data.cve] == ["CVE-2024-00001"], f"cve {data.cve}")
    check(data.vendor_references[0].title == "DSA-5532-1", f"vendorReferences {data.vendor_references}")
    check(data.published_time is not None, "publishedTime")
    check(data.repository_name == "library/debian", data.repository_name)
    check(data.image_digest == digest, data.image_digest)
    check(data.additional_properties.get("fixedVersion") == "3.0.11-1~deb12u2", f"extensions {data.additional_properties}")

    # The MDVM key: one sub-assessment per CVE (one each here), named UUID v5 of (finding, CVE).
    mdvm = list(client.sub_assessments.list(f"/subscriptions/{args.subscription}", MDVM_KEY))
    check(len(mdvm) == len(names), f"list(MDVM key) returned {len(mdvm)} of {len(names)}")
    expected = {str(uuid.uuid5(uuid.UUID(n), f"CVE-2024-{i:05d}")) for i, n in enumerate(names)}
    check({s.name for s in mdvm} == expected, "MDVM names are not UUID v5 of (finding, CVE)")
    name = str(uuid.uuid5(uuid.UUID(names[1]), "CVE-2024-00001"))
    got, raw = client.sub_assessments.get(
        registry_scope, MDVM_KEY, name, cls=lambda response, model, headers: (model, json.loads(response.http_response.text()))
    )
    check(got.name == name, f"get(MDVM key) returned {got.name}")
    check(got.id.endswith(f"/assessments/{MDVM_KEY}/subAssessments/{name}"), f"id {got.id}")
    check(got.id_properties_id == "CVE-2024-00001", f"properties.id {got.id_properties_id}")
    check(got.display_name == "CVE-2024-00001", f"displayName {got.display_name}")
    check(got.status.code == "Unhealthy", f"status.code {got.status.code}")
    check(isinstance(got.resource_details, AzureResourceDetails), f"resourceDetails {type(got.resource_details)}")
    data = got.additional_data
    # 7.0.0 maps no class to this discriminator: it falls back to the base class (and logs so).
    check(type(data) is AdditionalData, f"7.0.0 reads MDVM data as {type(data).__name__}")
    extra = raw["properties"]["additionalData"]
    check(extra["assessedResourceType"] == "AzureContainerRegistryVulnerability", f"additionalData {extra}")
    check(extra["vulnerabilityDetails"]["cveId"] == "CVE-2024-00001", f"vulnerabilityDetails {extra}")
    check(extra["artifactDetails"]["registryHost"] == "registry.example.com", f"artifactDetails {extra}")
    check(extra["softwareDetails"]["packageName"] == "openssl", f"softwareDetails {extra}")
    check(extra["softwareDetails"]["fixStatus"] == "FixAvailable", f"softwareDetails {extra}")

    print(
        f"azure-mgmt-security read {len(listed)} sub-assessments (list_all, list, get) and {len(mdvm)} under the "
        f"MDVM key from {args.url}: all fields as expected"
    )
    check_pricings(args)


if __name__ == "__main__":
    main()
