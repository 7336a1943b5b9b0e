"""The audit over cloud stores: AWS (moto server), GCP (gRPC fake), Azure (HTTPS fake)."""

from __future__ import annotations

import json

from keyguard.audit import Verdict
from tests.audit.conftest import Org
from tests.stores.servers.aws import REGION, AwsHarness, closed_port
from tests.stores.servers.azure import AzureHarness
from tests.stores.servers.base import allow_store_endpoint
from tests.stores.servers.gcp import GcpHarness


def test_environments_on_aws_gcp_and_azure(
    org: Org, aws_server: AwsHarness, gcp_server: GcpHarness, azure_server: AzureHarness
) -> None:
    old, prod = org.key("prod-old", age_days=100), org.key("prod-1", age_days=20)
    billing, search = org.key("billing-1", age_days=85), org.key("search-1", age_days=3)
    prod_uris = [org.store("prod"), aws_server.new_uri()]
    for uri in prod_uris:
        org.put(uri, old)
        org.put(uri, prod)  # the old key becomes previous in both
    billing_uri = gcp_server.new_uri()
    gcp_server.put_by_hand(billing_uri, billing.secret.reveal())  # no metadata: found by hint
    search_uri = azure_server.new_uri()
    org.put(search_uri, search)
    for name, uris in (("prod", prod_uris), ("billing", [billing_uri]), ("search", [search_uri])):
        org.envs[name] = {"stores": uris, "workspace": None, "policy": {}}

    code, out, err = org.cli("--format", "json")
    assert code == 0, err
    envs = {e["name"]: e for e in json.loads(out)["environments"]}
    assert {n: (e["key_id"], e["verdict"]) for n, e in envs.items()} == {
        "prod": (prod.id, "ok"),
        "billing": (billing.id, "due"),
        "search": (search.id, "ok"),
    }
    assert envs["prod"]["stores_agree"] and [s["uri"] for s in envs["prod"]["stores"]] == prod_uris
    assert envs["prod"]["previous"] == {"key_id": old.id, "status": "active"}
    assert envs["prod"]["stores"][1]["current"]["hint"] == prod.secret.hint
    assert envs["billing"]["hint"] == billing.secret.hint and envs["billing"]["age_days"] == 85
    assert envs["search"]["stores"][0]["current"]["key_id"] == search.id
    org.assert_no_key_in(out + err)


def test_a_file_store_and_an_aws_store_that_disagree(org: Org, aws_server: AwsHarness) -> None:
    a, b = org.key("split-a"), org.key("split-b")
    uris = [org.store("split"), aws_server.new_uri()]
    org.put(uris[0], a)
    org.put(uris[1], b)
    org.envs["split"] = {"stores": uris, "workspace": None, "policy": {}}
    (env,) = org.audit().environments
    assert not env.stores_agree and env.verdict is Verdict.VIOLATION
    assert [r.code for r in env.reasons] == ["stores_disagree"]
    assert f"{uris[1]}={b.id}" in env.reasons[0].message


def test_unreachable_or_denied_cloud_stores_are_reasons_not_crashes(
    org: Org, aws_server: AwsHarness, azure_server: AzureHarness
) -> None:
    org.env("dev", org.key("dev-1"))
    nowhere = allow_store_endpoint(f"http://127.0.0.1:{closed_port()}")
    down = f"aws-sm://{REGION}/anthropic/kg-down?endpoint_url={nowhere}&max_attempts=2"
    denied = azure_server.server.uri("kg-denied", vault_url=azure_server.server.fault_url("403"))
    org.envs["aws-down"] = {"stores": [down], "workspace": None, "policy": {}}
    org.envs["azure-denied"] = {"stores": [denied], "workspace": None, "policy": {}}
    loose = org.key("maybe-in-aws")  # nobody can tell: its store may be the one that is down

    code, out, err = org.cli("--format", "json")
    assert code == 1, err
    assert err == "" and "Traceback" not in out
    envs = {e["name"]: e for e in json.loads(out)["environments"]}
    assert envs["dev"]["verdict"] == "ok"  # one broken store hides nothing else
    for name, uri in (("aws-down", down), ("azure-denied", denied)):
        (reason,) = envs[name]["reasons"]
        assert (reason["code"], envs[name]["verdict"]) == ("store_unreadable", "violation")
        assert reason["message"].startswith(f"store {uri} could not be read: ")
        assert envs[name]["stores"][0]["error"]
    # What went wrong and what to do, said once: the store's own message is not re-prefixed.
    aws_says = envs["aws-down"]["reasons"][0]["message"]
    assert "cannot reach AWS Secrets Manager" in aws_says and "check the network" in aws_says
    assert aws_says.count(down) == 1
    azure_says = envs["azure-denied"]["reasons"][0]["message"]
    assert "permission denied (403" in azure_says and "grant this identity" in azure_says
    assert azure_says.count(denied) == 1

    doc = json.loads(out)
    assert [u["key_id"] for u in doc["unmanaged"]] == [loose.id]
    (note,) = doc["notes"]
    assert "2 store(s) could not be read" in note and down in note and "before revoking" in note

    code, out, _ = org.cli()  # the terminal table says the same in words
    assert code == 1 and "could not be read" in out and "aws-down" in out
    assert "Note: 2 store(s) could not be read" in out
    _, md, _ = org.cli("--format", "markdown")
    assert "**Note:** 2 store(s) could not be read" in md
    _, page, _ = org.cli("--format", "html")
    assert '<p class="note">Note: 2 store(s) could not be read' in page
