"""Property test: random pod networks (endpoints, vCPUs, model, vhost, machine, nesting) render or fail cleanly,
and every rendering names contiguous fds that match its NetPlumbing."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from katatest.errors import KatatestError
from katatest.host.endpoints import endpoints_from_specs
from katatest.host.facts import HostFacts
from tests.test_property_qemu import BASES, check_rejection, check_rendered, render_doc

SPECS = st.sampled_from(["veth", "veth:0a:58:0a:f4:00:07", "veth:DE:AD:BE:EF:00:02", "veth:02:42:ac:11:00:02"])


@st.composite
def pod(draw: st.DrawFn) -> tuple[dict[str, Any], HostFacts]:
    base = draw(st.sampled_from(sorted(BASES)))
    doc = copy.deepcopy(BASES[base])
    hv, runtime = doc["hypervisor"]["qemu"], doc.setdefault("runtime", {})
    hv["default_vcpus"] = draw(st.sampled_from([-1, 0, 1, 2, 3, 4, 8]))
    hv["default_maxvcpus"] = draw(st.sampled_from([0, 0, 2, 8]))
    hv["disable_vhost_net"] = draw(st.booleans())
    hv["tx_rate_limiter_max_rate"] = draw(st.sampled_from([0, 0, 10000000]))
    hv["rx_rate_limiter_max_rate"] = draw(st.sampled_from([0, 10000000]))
    if base == "default":
        hv["machine_type"] = draw(st.sampled_from(["q35", "q35", "microvm"]))
    runtime["internetworking_model"] = draw(st.sampled_from(["tcfilter", "macvtap", "default", "none"]))
    runtime["disable_new_netns"] = runtime["internetworking_model"] == "none" and draw(st.booleans())
    facts = HostFacts(arch="amd64" if base == "default" else "arm64", host_cpus=draw(st.sampled_from([1, 4, 8])),
                      host_mem_mib=16384, nested=draw(st.booleans()), vsock=draw(st.booleans()),
                      sharedfs=draw(st.booleans()), vhost_net=draw(st.booleans()),
                      net_endpoints=endpoints_from_specs(draw(st.lists(SPECS, max_size=4))))
    return doc, facts


@settings(deadline=None, max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(pod())
def test_random_pod_network_renders_or_rejects(case: tuple[dict[str, Any], HostFacts]) -> None:
    doc, facts = case
    try:
        rendered = render_doc(doc, facts, "pod.toml")
    except KatatestError as err:
        check_rejection(err)
        return
    check_rendered(rendered, doc)
    wanted = 0 if doc["runtime"]["disable_new_netns"] else len(facts.net_endpoints)
    assert len(rendered.network) == wanted
    assert [p.endpoint for p in rendered.network] == [e.name for e in facts.net_endpoints][:wanted]
    vcpus = int(rendered.argv_values()[rendered.argv_values().index("-smp") + 1].split(",")[0])
    assert all(p.queues == vcpus for p in rendered.network)
