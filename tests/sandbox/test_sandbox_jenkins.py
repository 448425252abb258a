"""The Jenkins emulator, driven the way the project drives a real Jenkins: through python-jenkins and requests."""

from __future__ import annotations

import os

import pytest
import requests

import jenkins
from helper.sandbox.jenkins.emulator import JenkinsEmulator
from tests.polling import wait_for

TOKEN = ("admin", "token")
# Generous for a loaded CI machine; passing runs finish in well under a second each.
DEADLINE_S = 10.0


@pytest.fixture
def make_emulator():
    started = []

    def make(**kwargs) -> JenkinsEmulator:
        emulator = JenkinsEmulator(**kwargs)
        emulator.start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


@pytest.fixture
def emulator(make_emulator) -> JenkinsEmulator:
    return make_emulator()


def client(emulator, username="admin", password="token", timeout=10) -> jenkins.Jenkins:
    return jenkins.Jenkins(emulator.url, username, password, timeout=timeout)


def build_of(server: jenkins.Jenkins, queue_id: int) -> int:
    item = wait_for(lambda: server.get_queue_item(queue_id).get("executable"), what=f"queue item {queue_id}")
    return item["number"]


def finished(server: jenkins.Jenkins, job: str, number: int) -> dict:
    def done():
        info = server.get_build_info(job, number)
        return info if not info["building"] else None

    return wait_for(done, what=f"{job} #{number} to finish")


def gate_command(tmp_path) -> str:
    """A build that runs until the test creates the file `release`."""
    return f"while [ ! -e {tmp_path}/release ]; do sleep 0.02; done; echo released"


# -- queue -> build -> result -----------------------------------------------------------------------------


def test_parameterized_build_in_a_folder_sees_its_parameters_and_succeeds(emulator, tmp_path):
    out = tmp_path / "seen"
    emulator.add_job("apps/deploy", parameters=[{"name": "INSTANCE_ID", "default": ""},
                                                 {"name": "SITE", "default": "www"}],
                     command=f'printf "%s %s %s %s" "$INSTANCE_ID" "$SITE" "$BUILD_NUMBER" "$JOB_NAME" > {out}')
    server = client(emulator, password="password")  # password auth: python-jenkins fetches a crumb

    queue_id = server.build_job("apps/deploy", {"INSTANCE_ID": "i-0abc", "NOT_A_PARAM": "ignored"})
    number = build_of(server, queue_id)
    info = finished(server, "apps/deploy", number)

    assert info["result"] == "SUCCESS"
    assert info["queueId"] == queue_id
    assert info["duration"] > 0
    assert info["actions"][0]["_class"] == "hudson.model.ParametersAction"
    assert {p["name"]: p["value"] for p in info["actions"][0]["parameters"]} == {"INSTANCE_ID": "i-0abc",
                                                                                "SITE": "www"}
    assert out.read_text() == "i-0abc www 1 apps/deploy"
    assert emulator.builds("apps/deploy")[0].params == {"INSTANCE_ID": "i-0abc", "SITE": "www"}
    assert server.get_build_info("apps/deploy", "lastSuccessfulBuild")["number"] == number


def test_failing_command_gives_failure_and_its_output(emulator):
    emulator.add_job("broken", parameters=[{"name": "X", "default": "1"}], command="echo going down; exit 3")
    server = client(emulator)

    number = build_of(server, server.build_job("broken", {"X": "2"}))

    assert finished(server, "broken", number)["result"] == "FAILURE"
    console = server.get_build_console_output("broken", number)
    assert "going down" in console
    assert console.rstrip().endswith("Finished: FAILURE")


def test_second_build_of_a_non_concurrent_job_waits_until_the_first_ends(emulator, tmp_path):
    emulator.add_job("deploy", parameters=[{"name": "INSTANCE_ID", "default": ""}], command=gate_command(tmp_path))
    server = client(emulator)
    first = build_of(server, server.build_job("deploy", {"INSTANCE_ID": "i-1"}))

    second_id = server.build_job("deploy", {"INSTANCE_ID": "i-2"})
    waiting = wait_for(lambda: (lambda i: i if i.get("why") and "progress" in i["why"] else None)(
        server.get_queue_item(second_id)), what="the second item to be blocked")
    assert waiting["_class"] == "hudson.model.Queue$BlockedItem"
    assert waiting["why"] == f"Build #{first} is already in progress (ETA: N/A)"
    assert server.get_job_info("deploy")["inQueue"] is True

    (tmp_path / "release").touch()
    second = build_of(server, second_id)
    assert second == first + 1
    assert finished(server, "deploy", second)["result"] == "SUCCESS"
    assert finished(server, "deploy", first)["result"] == "SUCCESS"


def test_builds_wait_for_a_free_executor(make_emulator, tmp_path):
    emulator = make_emulator(executors=1)
    emulator.add_job("a", command=gate_command(tmp_path))
    emulator.add_job("b")
    server = client(emulator)
    build_of(server, server.build_job("a"))

    b_id = server.build_job("b")
    item = wait_for(lambda: (lambda i: i if i["_class"].endswith("BuildableItem") else None)(
        server.get_queue_item(b_id)), what="b to wait for an executor")
    assert item["why"] == "Waiting for next available executor"

    (tmp_path / "release").touch()
    assert finished(server, "b", build_of(server, b_id))["result"] == "SUCCESS"


def test_cancelled_queue_item_never_builds(make_emulator):
    emulator = make_emulator(quiet_period_s=30.0)
    emulator.add_job("deploy", parameters=[{"name": "INSTANCE_ID", "default": ""}])
    server = client(emulator)
    queue_id = server.build_job("deploy", {"INSTANCE_ID": "i-9"})

    item = server.get_queue_item(queue_id)
    assert item["_class"] == "hudson.model.Queue$WaitingItem"
    assert item["why"].startswith("In the quiet period")
    listed = requests.get(f"{emulator.url}queue/api/json", auth=TOKEN, timeout=10,
                          params={"tree": "items[id,task[name],actions[parameters[name,value]]]"}).json()
    assert [(i["id"], i["task"]["name"], i["actions"][0]["parameters"][0]["value"])
            for i in listed["items"]] == [(queue_id, "deploy", "i-9")]

    server.cancel_queue(queue_id)

    item = server.get_queue_item(queue_id)
    assert (item["_class"], item["cancelled"], item["executable"]) == ("hudson.model.Queue$LeftItem", True, None)
    assert server.get_queue_info() == []
    assert emulator.builds("deploy") == []


def test_left_queue_items_vanish_after_the_retention(make_emulator):
    emulator = make_emulator(left_item_retention_s=0.2)
    emulator.add_job("noop")
    server = client(emulator)
    queue_id = server.build_job("noop")
    build_of(server, queue_id)

    def gone():
        try:
            server.get_queue_item(queue_id)
        except jenkins.JenkinsException as exc:
            return "does not exist" in str(exc)
        return False

    assert wait_for(gone, what="the left item to expire")


def test_stop_aborts_the_build_and_kills_its_process_group(emulator, tmp_path):
    pid_file = tmp_path / "child.pid"
    emulator.add_job("slow", parameters=[{"name": "N", "default": "1"}],
                     command=f"sleep 30 & echo $! > {pid_file}; wait")
    server = client(emulator)
    number = build_of(server, server.build_job("slow", {"N": "1"}))
    child = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), what="the child pid"))

    server.stop_build("slow", number)

    assert finished(server, "slow", number)["result"] == "ABORTED"
    assert wait_for(lambda: not _alive(child), what="the build's child to die")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child of the build's shell lingers as a zombie until init reaps it.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def test_build_without_parameters_is_400_on_a_parameterized_job_and_201_otherwise(emulator):
    emulator.add_job("with-params", parameters=[{"name": "A", "default": "a"}])
    emulator.add_job("plain")

    refused = requests.post(f"{emulator.url}job/with-params/build", auth=TOKEN, timeout=10)
    accepted = requests.post(f"{emulator.url}job/plain/build", auth=TOKEN, timeout=10, allow_redirects=False)
    unknown = requests.post(f"{emulator.url}job/nope/buildWithParameters?A=1", auth=TOKEN, timeout=10)

    assert refused.status_code == 400
    assert accepted.status_code == 201
    assert accepted.headers["Location"] == f"{emulator.url}queue/item/1/"
    assert unknown.status_code == 404
    with pytest.raises(requests.HTTPError):
        client(emulator).build_job("with-params")


# -- security -----------------------------------------------------------------------------------------------


def test_bad_token_is_401_and_anonymous_is_403(emulator):
    emulator.add_job("deploy")

    with pytest.raises(jenkins.JenkinsException, match=r"\[401\]"):
        client(emulator, password="wrong").get_job_info("deploy")
    anonymous = requests.get(f"{emulator.url}job/deploy/api/json", timeout=10)
    anonymous_crumb = requests.get(f"{emulator.url}crumbIssuer/api/json", timeout=10)
    whoami = requests.get(f"{emulator.url}whoAmI/api/json", timeout=10)

    assert (anonymous.status_code, anonymous_crumb.status_code) == (403, 403)
    assert anonymous.headers["X-Jenkins"] == "2.440.3"
    assert whoami.json()["anonymous"] is True
    with pytest.raises(jenkins.BadHTTPException):
        jenkins.Jenkins(emulator.url, timeout=10).get_version()  # skips auth, as the reference says


def test_password_posts_need_the_session_crumb_and_token_posts_do_not(emulator):
    emulator.add_job("deploy", parameters=[{"name": "A", "default": ""}])
    trigger = f"{emulator.url}job/deploy/buildWithParameters?A=1"
    session = requests.Session()
    session.auth = ("admin", "password")
    crumb = session.get(f"{emulator.url}crumbIssuer/api/json", timeout=10).json()
    assert crumb["crumbRequestField"] == "Jenkins-Crumb"

    without = session.post(trigger, timeout=10)
    with_crumb = session.post(trigger, headers={"Jenkins-Crumb": crumb["crumb"]}, timeout=10)
    other_session = requests.post(trigger, auth=("admin", "password"), timeout=10,
                                  headers={"Jenkins-Crumb": crumb["crumb"]})
    token = requests.post(trigger.replace("A=1", "A=2"), auth=TOKEN, timeout=10)

    assert (without.status_code, without.reason) == (403, "No valid crumb was included in the request")
    assert with_crumb.status_code == 201
    assert other_session.status_code == 403
    assert token.status_code == 201


# -- queries ------------------------------------------------------------------------------------------------


def test_tree_query_finds_a_build_by_its_parameter(emulator):
    emulator.add_job("site/deploy", parameters=[{"name": "INSTANCE_ID", "default": ""}], concurrent=True)
    server = client(emulator)
    for instance in ("i-1", "i-2", "i-3"):
        server.build_job("site/deploy", {"INSTANCE_ID": instance})
    emulator.wait_idle(DEADLINE_S)

    tree = "builds[number,result,building,actions[parameters[name,value]]]{0,2}"
    info = server.get_job_info("site/deploy", depth=0)
    found = requests.get(f"{emulator.url}job/site/job/deploy/api/json", params={"tree": tree},
                         auth=TOKEN, timeout=10).json()

    assert [b["number"] for b in info["builds"]] == [3, 2, 1]
    assert set(info["builds"][0]) == {"_class", "number", "url"}  # depth 0: references only
    assert len(found["builds"]) == 2
    match = [b for b in found["builds"] for a in b["actions"] if a.get("parameters")
             and {"name": "INSTANCE_ID", "value": "i-2", "_class": "hudson.model.StringParameterValue"}
             in a["parameters"]]
    assert [(b["number"], b["result"], b["building"]) for b in match] == [
        (emulator.builds("site/deploy")[1].number, "SUCCESS", False)]
    assert set(found) == {"_class", "builds"}


def test_jobs_load_from_jenkins_job_builder_yaml(emulator, tmp_path):
    (tmp_path / "jobs.yaml").write_text("""
- job:
    name: deploy
    folder: apps
    concurrent: true
    parameters:
      - string: {name: INSTANCE_ID, default: "", description: the new instance}
      - choice: {name: STAGE, choices: [prod, staging]}
      - bool: {name: DRY_RUN, default: false}
    builders:
      - shell: !include-raw: deploy.sh
- job-template:
    name: "{site}-ignored"
""")
    names = emulator.add_jobs_from_jjb(tmp_path, commands={"apps/deploy": 'echo "$STAGE $DRY_RUN"'})
    server = client(emulator)

    info = server.get_job_info("apps/deploy")
    number = build_of(server, server.build_job("apps/deploy", {"INSTANCE_ID": "i-1", "DRY_RUN": "true"}))

    assert names == ["apps/deploy"]
    assert info["concurrentBuild"] is True
    assert [(d["name"], d["type"]) for d in info["property"][0]["parameterDefinitions"]] == [
        ("INSTANCE_ID", "StringParameterDefinition"), ("STAGE", "ChoiceParameterDefinition"),
        ("DRY_RUN", "BooleanParameterDefinition")]
    assert finished(server, "apps/deploy", number)["result"] == "SUCCESS"
    assert "prod true" in server.get_build_console_output("apps/deploy", number)


# -- faults -------------------------------------------------------------------------------------------------


def test_down_refuses_connections_and_up_serves_again_on_the_same_port(emulator):
    emulator.add_job("deploy")
    server = client(emulator)
    assert server.get_job_info("deploy")["name"] == "deploy"  # keeps a pooled connection open

    answer = requests.post(f"{emulator.url}_emulator/faults", json={"down": True}, timeout=10)
    assert answer.json()["down"] is True
    with pytest.raises(requests.ConnectionError):
        server.get_job_info("deploy")

    emulator.up()
    assert server.get_job_info("deploy")["name"] == "deploy"


def test_5xx_errors_for_a_number_of_requests(emulator):
    emulator.add_job("deploy")
    server = client(emulator)
    server.get_whoami()
    requests.post(f"{emulator.url}_emulator/faults", json={"errors_5xx": 1}, timeout=10).raise_for_status()
    with pytest.raises(jenkins.JenkinsException, match=r"\[500\]"):
        server.get_job_info("deploy")

    emulator.fail_requests(count=2, status=503)
    with pytest.raises(requests.HTTPError) as raised:
        server.build_job("deploy")
    assert raised.value.response.status_code == 503
    # python-jenkins turns any other HTTPError from get_job_info into "does not exist": a trap for callers.
    with pytest.raises(jenkins.JenkinsException, match="does not exist"):
        server.get_job_info("deploy")
    assert server.get_job_info("deploy")["name"] == "deploy"


def test_5xx_errors_for_a_duration(emulator):
    emulator.fail_requests(duration_s=0.3, status=502)
    failing = requests.get(f"{emulator.url}api/json", auth=TOKEN, timeout=10)
    assert failing.status_code == 502
    assert wait_for(lambda: requests.get(f"{emulator.url}api/json", auth=TOKEN, timeout=10).ok,
                    what="the errors to stop")


def test_slow_answers_time_out_a_client_with_a_timeout(emulator):
    emulator.add_job("deploy")
    requests.post(f"{emulator.url}_emulator/faults", json={"slow_s": 5}, timeout=10).raise_for_status()

    with pytest.raises(jenkins.TimeoutException):
        client(emulator, timeout=0.3).get_job_info("deploy")


def test_hung_builds_run_until_stopped(emulator, tmp_path):
    emulator.add_job("deploy", command=f"touch {tmp_path}/ran")
    emulator.hang_builds()
    server = client(emulator)
    number = build_of(server, server.build_job("deploy"))

    with pytest.raises(TimeoutError):
        emulator.wait_idle(0.3)
    assert server.get_build_info("deploy", number)["building"] is True

    server.stop_build("deploy", number)
    assert finished(server, "deploy", number)["result"] == "ABORTED"
    assert not (tmp_path / "ran").exists()


def test_aborted_builds_end_aborted_without_running(emulator, tmp_path):
    emulator.add_job("deploy", command=f"touch {tmp_path}/ran")
    requests.post(f"{emulator.url}_emulator/faults", json={"abort_builds": True}, timeout=10).raise_for_status()
    server = client(emulator)

    number = build_of(server, server.build_job("deploy"))

    assert finished(server, "deploy", number)["result"] == "ABORTED"
    assert not (tmp_path / "ran").exists()


def test_a_configured_root_url_is_what_jenkins_reports_whatever_url_reached_it(emulator):
    # A Jenkins behind a proxy, or whose "Jenkins URL" setting names another host, answers with its
    # configured root in api/json, queue task URLs, build URLs and the Location of a queued build.
    emulator.add_job("deploy", parameters=[{"name": "X", "default": ""}])
    root = emulator.url.replace("127.0.0.1", "jenkins.internal") + "ci/"
    emulator.set_root_url(root)
    server = client(emulator)
    assert server.get_info(query="?tree=url")["url"] == root
    reply = requests.post(f"{emulator.url}job/deploy/buildWithParameters?X=1", auth=TOKEN, timeout=10)
    assert reply.status_code == 201 and reply.headers["Location"].startswith(f"{root}queue/item/")
    queue_id = int(reply.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    assert server.get_queue_item(queue_id)["task"]["url"] == f"{root}job/deploy/"
    number = build_of(server, queue_id)
    assert server.get_build_info("deploy", number)["url"] == f"{root}job/deploy/{number}/"
