# The two commands README.md opens with. Each sets up what it needs on a fresh clone:
# a virtual environment in .venv with this package and its test/sandbox extras, and
# (for the tests, when run as root) the Debian packages whose programs read our files.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STATE ?= .sandbox
# Programs the tests run as real readers of our files; see tests/test_readers.py.
DEBIAN_PACKAGES := openssh-client openssh-server iproute2 git capistrano ruby-net-ssh groovy haproxy prometheus

.PHONY: demo test venv system-deps bench clean

$(BIN)/aws-deploy-helper: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[sandbox,test]'
	touch $@

venv: $(BIN)/aws-deploy-helper

system-deps:
	@missing=""; \
	for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing Debian packages:$$missing (install them as root; their tests are skipped meanwhile)"; \
	  fi; \
	fi

# The main job on the bundled local AWS: start the sandbox, write the inventory of the
# demo fleet and print it; then scale workers-asg out by one and let the consumer deploy the
# new instance through the sandbox's Jenkins before its hook lets it into service; last, a rolling
# deploy of a small site behind a real HAProxy under load (needs root and haproxy; else it says why).
demo: venv
	@$(BIN)/aws-deploy-helper sandbox up --state-dir $(STATE) >/dev/null
	@set -e; trap '$(BIN)/aws-deploy-helper sandbox down --state-dir $(STATE) >/dev/null' EXIT; \
	helper=$(BIN)/aws-deploy-helper; \
	eval "$$($$helper sandbox status --state-dir $(STATE) | grep '^export [A-Z_]*=')"; \
	echo "==> aws-deploy-helper inventory -c $(STATE)/demo.yml --list"; \
	$$helper inventory -c $(STATE)/demo.yml --list; \
	for f in $(STATE)/out/ssh_config $(STATE)/out/cap_config.yml; do echo "==> $$f"; cat $$f; done; \
	echo "==> scale workers-asg from 2 to 3: the new instance waits in Pending:Wait"; \
	$$helper sandbox scale --state-dir $(STATE) workers-asg 3; \
	echo "==> aws-deploy-helper consume -c $(STATE)/demo.yml --once"; \
	$$helper -v consume -c $(STATE)/demo.yml --once 2>&1 | grep -E 'event=(build_queued|action_completed)'; \
	$$helper sandbox scale --state-dir $(STATE) workers-asg; \
	echo "==> rolling deploy under load: aws-deploy-helper rollout, batch by batch behind HAProxy"; \
	$(BIN)/python -m helper.sandbox.demo.rollout_demo

test: venv system-deps
	$(BIN)/ruff check helper tests bench
	$(BIN)/python -m pytest -q

# Both benchmarks: the inventory cost curve against Ansible's aws_ec2 (1,000, 5,000 and 10,000
# instances) and the lifecycle burst of 1,000 launches. Ansible is a peer we measure, not a
# dependency, so it is installed here only.
bench: venv
	@# The peer is Ansible's amazon.aws collection, which the full `ansible` package carries
	@# (the test extra installs only ansible-core, so `import ansible` alone would pass).
	@$(BIN)/python -c 'import ansible_collections.amazon.aws' 2>/dev/null || $(BIN)/python -m pip install --quiet ansible
	@# Both run even when the first reports a target short; make fails if either did.
	@status=0; $(BIN)/python bench/inventory.py || status=1; \
	$(BIN)/python bench/lifecycle.py --burst || status=1; exit $$status

clean:
	rm -rf $(VENV) $(STATE) .pytest_cache
