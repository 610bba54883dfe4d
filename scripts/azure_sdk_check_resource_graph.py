#!/usr/bin/env python3
"""Queries a running Crowsnest with the official Azure Resource Graph SDK (azure-mgmt-resourcegraph).

Run after `azure_sdk_check.py` has seeded the subscription's findings: pages through every
sub-assessment with `ResourceGraphClient.resources(QueryRequest(...))` (following `$skipToken`),
compares each row with what the Sub-Assessments API (azure-mgmt-security) lists for the same
finding, checks a `summarize`, both keys' counts, the Defender plans' rows (as the Pricings API
lists them), the table result format and a refused query's error. Exits non-zero
on the first mismatch.
"""

import argparse

from azure.core.exceptions import HttpResponseError
from azure.mgmt.resourcegraph import ResourceGraphClient
from azure.mgmt.resourcegraph.models import QueryRequest, QueryRequestOptions, ResultFormat
from azure.mgmt.security import SecurityCenter

# The same client wiring and failure report as the Sub-Assessments check beside it.
from azure_sdk_check import NoCredential, StaticBearer, check

KEY = "dbd0cb49-b563-45e7-9724-889e799fa648"
MDVM_KEY = "c0b7cfc6-3172-465a-b378-53c7ff2cc0d5"
ALL_SUB_ROWS = 'securityresources | where type == "microsoft.security/assessments/subassessments"'
# The container registry key's rows: one per finding, as `list_all` lists them.
SUB_ROWS = f'{ALL_SUB_ROWS} and assessmentKey == "{KEY}"'


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--subscription", default="sdk-sub")
    args = parser.parse_args()

    graph = ResourceGraphClient(NoCredential(), base_url=args.url, authentication_policy=StaticBearer(args.token))
    security = SecurityCenter(
        NoCredential(), args.subscription, base_url=args.url, authentication_policy=StaticBearer(args.token)
    )
    listed = {s.name: s for s in security.sub_assessments.list_all(f"subscriptions/{args.subscription}")}
    check(listed, "the Sub-Assessments API lists nothing: run azure_sdk_check.py first")

    rows, pages, options = [], 0, QueryRequestOptions(top=100)
    while True:
        response = graph.resources(
            QueryRequest(subscriptions=[args.subscription], query=f"{SUB_ROWS} | project id, name, properties", options=options)
        )
        pages += 1
        check(response.total_records == len(listed), f"totalRecords {response.total_records}, listed {len(listed)}")
        check(response.count == len(response.data), f"count {response.count} for {len(response.data)} rows")
        check(response.result_truncated == "false", f"resultTruncated {response.result_truncated}")
        rows.extend(response.data)
        if not response.skip_token:
            break
        options = QueryRequestOptions(skip_token=response.skip_token)
        check(pages < 100, "paging does not end")
    check(pages == -(-len(listed) // 100), f"{pages} pages for {len(listed)} rows of 100")
    check(sorted(r["name"] for r in rows) == sorted(listed), "the rows are the listed sub-assessments, each once")
    for row in rows:
        api = listed[row["name"]]
        check(row["id"] == api.id, f"id {row['id']} vs {api.id}")
        properties = row["properties"]
        check(properties["id"] == api.id_properties_id, f"properties.id of {row['name']}")
        check(properties["status"]["severity"] == api.status.severity, f"severity of {row['name']}")
        check(properties["status"]["code"] == api.status.code, f"status of {row['name']}")
        check(properties["displayName"] == api.display_name, f"displayName of {row['name']}")
        check(
            properties["additionalData"]["imageDigest"] == api.additional_data.image_digest,
            f"imageDigest of {row['name']}",
        )

    summary = graph.resources(
        QueryRequest(
            subscriptions=[args.subscription],
            query=f"{SUB_ROWS} | extend severity = tostring(properties.status.severity)"
            " | summarize findings = count() by severity | order by findings desc",
            options=QueryRequestOptions(result_format=ResultFormat.TABLE),
        )
    )
    expected = {}
    for s in listed.values():
        expected[s.status.severity] = expected.get(s.status.severity, 0) + 1
    columns = [c["name"] for c in summary.data["columns"]]
    check(columns == ["severity", "findings"], f"columns {columns}")
    check({r[0]: r[1] for r in summary.data["rows"]} == expected, f"summary {summary.data['rows']} vs {expected}")

    # Both keys' rows: as many under each as the Sub-Assessments API lists under it.
    mdvm = list(security.sub_assessments.list(f"subscriptions/{args.subscription}", MDVM_KEY))
    per_key = graph.resources(
        QueryRequest(
            subscriptions=[args.subscription],
            query=f"{ALL_SUB_ROWS} | summarize n = count() by assessmentKey",
        )
    )
    counts = {r["assessmentKey"]: r["n"] for r in per_key.data}
    check(counts == {KEY: len(listed), MDVM_KEY: len(mdvm)}, f"rows per key {counts}, listed {len(listed)} and {len(mdvm)}")

    # The Defender plans: the Pricings API's resources, in the row envelope.
    plans = {p.name: p for p in security.pricings.list(f"subscriptions/{args.subscription}").value}
    plan_rows = graph.resources(
        QueryRequest(
            subscriptions=[args.subscription],
            query='securityresources | where type =~ "Microsoft.Security/pricings" | project id, name, properties',
        )
    ).data
    check(sorted(r["name"] for r in plan_rows) == sorted(plans), f"plan rows {plan_rows}, listed {sorted(plans)}")
    for row in plan_rows:
        plan = plans[row["name"]]
        check(row["id"] == plan.id, f"id {row['id']} vs {plan.id}")
        check(row["properties"]["pricingTier"] == plan.pricing_tier, f"tier of {row['name']}")

    try:
        graph.resources(QueryRequest(subscriptions=[args.subscription], query="securityresources | where type == == 1"))
        check(False, "a malformed query was answered")
    except HttpResponseError as e:
        check(e.status_code == 400, f"status {e.status_code}")
        check(e.error.code == "BadRequest", f"code {e.error.code}")
        detail = e.error.details[0]
        check(detail.code == "ParserFailure", f"detail {detail.code}")

    print(
        f"azure-mgmt-resourcegraph read {len(rows)} sub-assessments in {pages} pages from {args.url}: "
        "the same as the Sub-Assessments API lists; summarize, plans, table format and errors as expected"
    )


if __name__ == "__main__":
    main()
