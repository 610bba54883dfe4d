"""Rows for scripts/api-fuzz to find: one image with findings under the registry `fuzz/fuzz/fuzzreg`
(connected through the API beforehand), written as SQL for psql, as scripts/azure_sdk_check.py
seeds its SQLite database. Findings come only from scans, and the run has no scan workers."""

import json
import sys
import time
import uuid

registry_id, digest = sys.argv[1], sys.argv[2]
now = int(time.time() * 1_000_000)
image_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "crowsnest-fuzz-image"))


def q(v):
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, float)):
        return str(v)
    return "'" + str(v).replace("'", "''") + "'"


print(
    "INSERT INTO images (id, registry_id, subscription_id, repository, digest, health, running, created_at)"
    f" VALUES ({q(image_id)}, {q(registry_id)}, 'fuzz', 'library/debian', {q(digest)}, 'Unhealthy', FALSE, {now});"
)
for i in range(12):
    advisory = f"CVE-2024-{i:05d}"
    row = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"crowsnest-fuzz-{i}")),
        "subscription_id": "fuzz",
        "resource_group": "fuzz",
        "registry_id": registry_id,
        "registry_name": "fuzzreg",
        "image_id": image_id,
        "repository": "library/debian",
        "image_digest": digest,
        "advisory_id": advisory,
        "package_name": "openssl",
        "installed_version": "3.0.11-1~deb12u1",
        "fixed_version": "3.0.11-1~deb12u2" if i % 3 else None,
        "ecosystem": "Debian:12",
        "category": "Debian",
        "severity": ["Low", "Medium", "High", "Critical"][i % 4],
        "severity_source": "cvss3",
        "cvss2_base": None,
        "cvss3_base": [2.1, 5.3, 7.5, 9.8][i % 4],
        "display_name": f"openssl: {advisory}",
        "description": f"{advisory} in openssl",
        "remediation": "Upgrade openssl.",
        "impact": "High",
        "cves": json.dumps([{"title": advisory, "link": f"https://nvd.nist.gov/vuln/detail/{advisory}"}]),
        "vendor_references": json.dumps([]),
        "published_at": now,
        "patchable": bool(i % 3),
        "layer_digest": "sha256:" + "cd" * 32,
        "first_seen": now,
        "last_seen": now,
        "resolved_at": now if i == 11 else None,
        "fingerprint": "",
        "severity_rank": i % 4 + 1,
        "mdvm_vulnerabilities": 1,  # its one CVE: one MDVM sub-assessment
    }
    print(f"INSERT INTO findings ({', '.join(row)}) VALUES ({', '.join(q(v) for v in row.values())});")
    # As the store writes them with the finding: the MDVM sub-assessment's derived name.
    mdvm_name = str(uuid.uuid5(uuid.UUID(row["id"]), advisory))
    print(f"INSERT INTO mdvm_names (name, finding_id, vulnerability) VALUES ({q(mdvm_name)}, {q(row['id'])}, {q(advisory)});")
