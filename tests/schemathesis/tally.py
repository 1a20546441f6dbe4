"""What a Schemathesis run sent and got: per operation, the answers by status (from its NDJSON
report), so the log shows which paths the fuzzing reached (e.g. how many uploads got past the
checks). Usage: tally.py REPORT.ndjson"""
import collections
import json
import sys

statuses = collections.defaultdict(collections.Counter)
for line in open(sys.argv[1], encoding="utf-8"):
    event = json.loads(line)
    scenario = event.get("ScenarioFinished")
    if not scenario:
        continue
    recorder = scenario["recorder"]
    for interaction in recorder.get("interactions", {}).values():
        response = interaction.get("response")
        if not response:
            statuses[recorder["label"]]["no answer"] += 1
            continue
        label = recorder["label"]
        if label == "Stateful tests":
            request = interaction.get("request", {})
            path = request.get("uri", "").split("://", 1)[-1].split("/", 1)[-1].split("?")[0]
            label = f"stateful {request.get('method')} /{path.split('/')[0]}/" + (
                "ocr/result/…" if "ocr/result/" in path else "/".join(path.split("/")[1:]))
        statuses[label][response["status_code"]] += 1

total = 0
for label in sorted(statuses):
    counts = statuses[label]
    total += sum(counts.values())
    by_status = ", ".join(f"{s}: {n}" for s, n in sorted(counts.items(), key=lambda x: str(x[0])))
    print(f"  {label:45} {sum(counts.values()):6}  ({by_status})")
print(f"  {'requests':45} {total:6}")
