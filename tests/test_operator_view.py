"""The operator's view (issue 23): the Prometheus rules pass promtool's check and its unit tests
(each alert fires on a series that should fire it, quiet on one that should not), and every query
of the rules and of the Grafana dashboard parses and names only metrics the consumer exports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from helper.breaker.alerts import counters_on
from helper.breaker.sites import BreakerMetrics
from helper.consumer.metrics import Metrics

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "contrib" / "prometheus" / "aws-deploy-helper.rules.yml"
RULE_TESTS = ROOT / "contrib" / "prometheus" / "aws-deploy-helper.rules.test.yml"
DASHBOARD = ROOT / "contrib" / "grafana" / "aws-deploy-helper.json"
# PromQL words that look like metric names: functions, aggregations, keywords.
PROMQL_WORDS = {"sum", "max", "min", "avg", "count", "rate", "increase", "irate", "by", "without", "on", "and",
                "or", "unless", "time", "absent", "histogram_quantile", "le", "ignoring", "group_left", "offset"}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is not installed; on CI the rules must be checked (apt-get install prometheus)")
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    return found


def exported() -> set[str]:
    """Every sample name the consumer's /metrics can carry (its registry, the breakers', the alerts')."""
    metrics = Metrics()
    BreakerMetrics(metrics.registry, ["web"])
    counters_on(metrics.registry)
    names = set()
    for family in metrics.registry.collect():
        names |= {sample.name for sample in family.samples}  # a labelled family may have none yet:
        if family.type == "counter":
            names |= {f"{family.name}_total"}
        if family.type == "gauge":
            names |= {family.name}
        if family.type == "histogram":
            names |= {f"{family.name}_bucket", f"{family.name}_count", f"{family.name}_sum"}
    return names | {"up"}


def recorded() -> set[str]:
    rules = yaml.safe_load(RULES.read_text())
    return {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}


def metric_names(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"|\{[^}]*\}|\[[^\]]*\]', " ", expr)
    without_strings = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", without_strings)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_strings))
    return {w for w in words if w not in PROMQL_WORDS and not re.fullmatch(r"[0-9.]+|e[0-9]*", w)}


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def test_promtool_checks_the_rules_and_every_alert_fires_only_when_it_should():
    checked = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([promtool(), "test", "rules", str(RULE_TESTS)], capture_output=True, text=True)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r}
    covered = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    assert alerts == covered, "an alert without a promtool test"


def test_the_example_scrape_config_is_valid_and_uses_the_rules_job_name():
    config = RULES.parent / "prometheus.example.yml"
    checked = subprocess.run([promtool(), "check", "config", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert yaml.safe_load(config.read_text())["scrape_configs"][0]["job_name"] == "aws-deploy-helper"


def test_the_rules_name_only_metrics_the_consumer_exports():
    known = exported() | recorded()
    rules = yaml.safe_load(RULES.read_text())
    unknown = {(r.get("alert") or r.get("record")): metric_names(r["expr"]) - known
               for g in rules["groups"] for r in g["rules"]}
    assert {k: v for k, v in unknown.items() if v} == {}


def test_every_dashboard_query_parses_and_names_only_exported_metrics(tmp_path):
    queries = dashboard_queries()
    assert len(queries) >= 15
    known = exported() | recorded()
    assert {q: metric_names(q) - known for q in queries if metric_names(q) - known} == {}
    # promtool parses PromQL only inside rules: each query becomes a recording rule to check.
    as_rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:q{i}", "expr": q}
                                                              for i, q in enumerate(queries)]}]}
    (tmp_path / "dashboard.rules.yml").write_text(yaml.safe_dump(as_rules))
    checked = subprocess.run([promtool(), "check", "rules", str(tmp_path / "dashboard.rules.yml")],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_name_check_itself_sees_an_unknown_metric():
    assert metric_names('sum by (site) (rate(adh_not_a_metric_total{site="x"}[5m]))') == {"adh_not_a_metric_total"}
    assert "adh_not_a_metric_total" not in exported()


# --- a real Prometheus against a real consumer -----------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Prometheus:
    """Debian's Prometheus on loopback, scraping the consumer every second with our rules."""

    def __init__(self, tmp: Path, target_port: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        shutil.copy(RULES, tmp / RULES.name)
        (tmp / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [RULES.name],
            "scrape_configs": [{"job_name": "aws-deploy-helper",
                                "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}]}]}))
        self.log = (tmp / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [shutil.which("prometheus"), f"--config.file={tmp / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}"],
            cwd=tmp, stdout=self.log, stderr=subprocess.STDOUT)

    def query(self, promql: str) -> list[dict]:
        import requests

        try:
            answer = requests.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5).json()
        except (requests.RequestException, ValueError):
            return []
        return answer.get("data", {}).get("result", [])

    def value(self, promql: str) -> float:
        found = self.query(promql)
        return float(found[0]["value"][1]) if found else 0.0

    def firing(self) -> set[str]:
        import requests

        try:
            alerts = requests.get(f"{self.url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        except (requests.RequestException, ValueError, KeyError):
            return set()
        return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def test_prometheus_scrapes_a_scale_out_and_a_failed_deploy_fires_the_builds_failing_alert(aws, tmp_path):
    import sys

    from tests.polling import wait_for
    from tests.scenario import Scenario

    if shutil.which("prometheus") is None:
        promtool()  # the same skip-or-fail rule: Debian's prometheus package brings both
        pytest.skip("prometheus is not installed")
    metrics_port = free_port()
    world = Scenario(aws, tmp_path, metrics_port=metrics_port)
    consumer = subprocess.Popen([sys.executable, "-m", "helper", "consume", "-c", str(world.config_path)],
                                env=world.env(), stderr=subprocess.DEVNULL)
    prometheus = Prometheus(tmp_path, metrics_port)
    try:
        wait_for(lambda: prometheus.value('up{job="aws-deploy-helper"}') == 1, "Prometheus scraping the consumer",
                 timeout_s=60)
        (first,) = world.scale_to(3)
        wait_for(lambda: world.all_in_service([first]), "the scale-out deployed and completed", timeout_s=60)
        wait_for(lambda: prometheus.value('adh_actions_completed_total{result="CONTINUE"}') >= 1
                 and prometheus.value("adh_builds_queued_total") >= 1, "the scale-out in Prometheus", timeout_s=30)
        assert "ADHBuildsFailing" not in prometheus.firing()

        (world.tmp / "fail" / "once").write_text("")  # the next deploy fails: ABANDON
        world.scale_to(4)
        try:
            wait_for(lambda: "ADHBuildsFailing" in prometheus.firing(), "the builds-failing alert to fire",
                     timeout_s=90)
        except AssertionError:
            raise AssertionError(f"{prometheus.query('adh_actions_completed_total')} builds "
                                 f"{[(b.number, b.result) for b in world.builds()]}") from None
        assert prometheus.value('adh_actions_completed_total{result="ABANDON"}') >= 1
        assert not {"ADHConsumerDown", "ADHConsumerStalled"} & prometheus.firing()
    finally:
        prometheus.stop()
        consumer.terminate()
        try:
            consumer.wait(60)
        finally:
            consumer.kill()
            world.close()
