"""Counts of a scripts/api-fuzz run, from schemathesis' NDJSON events: operations, requests,
failures (requests that failed a check) and the distinct (operation, check) pairs that failed."""

import json
import sys
from collections import Counter

operations = requests = 0
failed_requests = 0
failed = Counter()
statuses = Counter()
for line in open(sys.argv[1]):
    event = json.loads(line)
    kind, body = next(iter(event.items()))
    if kind == "LoadingFinished":
        operations = body["statistic"]["operations"]["selected"]
    elif kind == "ScenarioFinished":
        recorder = body["recorder"]
        for interaction in recorder.get("interactions", {}).values():
            requests += 1
            response = interaction.get("response") or {}
            statuses[str(response.get("status_code", "none"))[0] + "xx"] += 1
        for checks in recorder.get("checks", {}).values():
            names = [c["name"] for c in checks if c["status"] == "failure"]
            if names:
                failed_requests += 1
            for name in names:
                failed[(recorder["label"], name)] += 1
print(
    f"api-fuzz: {operations} operations, {requests} requests "
    f"({', '.join(f'{k} {v}' for k, v in sorted(statuses.items()))}), "
    f"{failed_requests} failures in {len(failed)} (operation, check) pairs, {sys.argv[2]} s"
)
for (label, name), n in sorted(failed.items()):
    print(f"  {n:5d}  {name:30s} {label}")
