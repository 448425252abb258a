"""A stand-in for aws-deploy-helper in the library's step tests: it records each call (its argv,
and the AWS variables it saw) as one JSON line in $FAKE_HELPER_LOG and answers as the helper would.
$FAKE_HELPER_FAIL is the start of a command line that fails with one line ("inventory", "rollout -c": a run)."""

import json
import os
import sys

args = sys.argv[1:]
words = [a for a in args if not a.startswith("-")]
with open(os.environ["FAKE_HELPER_LOG"], "a") as log:
    log.write(json.dumps({"argv": args, "aws_key": os.environ.get("AWS_ACCESS_KEY_ID"),
                          "aws_secret": os.environ.get("AWS_SECRET_ACCESS_KEY")}) + "\n")
failing = os.environ.get("FAKE_HELPER_FAIL", "")
if failing and " ".join(args).startswith(failing):
    print(f"aws-deploy-helper: {failing} failed (FAKE_HELPER_FAIL)", file=sys.stderr)
    sys.exit(1)
value = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in args if a.startswith("--") and "=" in a}
if words[:2] == ["rollout", "plan"]:
    print(os.environ.get("FAKE_ROLLOUT", "false"))
elif words[:2] == ["revision", "resolve"]:
    print(value.get("--revision") or "v-recorded")
elif words[:2] == ["revision", "get"]:
    print("v-recorded")
elif words[:2] == ["revision", "previous"]:
    print(value.get("--revision") or "v-before")
elif words[:1] == ["inventory"]:
    out = args[args.index("--json") + 1]
    site = value["--site"]
    with open(out, "w") as inventory:
        json.dump({"sites": {site: [{"alias": f"{site}-i-0123456789abcdef0", "instance_id": "i-0123456789abcdef0"}]}},
                  inventory)
