"""Who `iam-policy` writes a document for.

Apart from the policy table so that building the CLI's parser (every command pays for it)
does not import the table and what it imports: 20 ms of a 1,000-instance inventory run.
"""

HELPER, CONSUMER, HOOK_ROLE, SETUP = "helper", "consumer", "hook-role", "setup"
# Printed by default; `setup` (whoever runs `hooks install` and `doctor`) on request.
DEFAULT_PRINCIPALS = (HELPER, CONSUMER, HOOK_ROLE)
PRINCIPALS = DEFAULT_PRINCIPALS + (SETUP,)
