"""The per-net layout of the fault harness: net 0 is the original single-run layout,
and different nets never share a namespace name, an address or a lock file."""
from __future__ import annotations

import itertools

import pytest

from bench import chaos_net as net


def test_net_zero_is_the_original_layout() -> None:
    lay = net.layout(0)
    assert (lay.prefix, lay.bridge_ns, lay.client_ns) == ("qhbchaos", "qhbchaos-br", "qhbchaos-cl")
    assert [lay.node_ns(i) for i in range(3)] == ["qhbchaos-n0", "qhbchaos-n1", "qhbchaos-n2"]
    assert [lay.db_ip(i) for i in range(3)] == ["10.213.0.11", "10.213.0.12", "10.213.0.13"]
    assert [lay.dcs_ip(i) for i in range(3)] == ["10.213.1.11", "10.213.1.12", "10.213.1.13"]
    assert lay.client_ip == "10.213.0.100"
    assert lay.lock == "/run/qhbchaos.lock"


def test_net_n_uses_octets_2n_and_2n_plus_1() -> None:
    lay = net.layout(2)
    assert (lay.bridge_ns, lay.client_ns, lay.node_ns(1)) == ("qhbchaos2-br", "qhbchaos2-cl", "qhbchaos2-n1")
    assert (lay.db_ip(0), lay.dcs_ip(0), lay.client_ip) == ("10.213.4.11", "10.213.5.11", "10.213.4.100")
    assert lay.lock == "/run/qhbchaos2.lock"
    top = net.layout(net.MAX_NET)
    assert top.dcs_ip(net.MAX_NODES - 1) == "10.213.255.98"


def _names(lay: net.Layout) -> set[str]:
    return {lay.bridge_ns, lay.client_ns, *(lay.node_ns(i) for i in range(12))}


def _addresses(lay: net.Layout) -> set[str]:
    return {lay.client_ip, *(lay.db_ip(i) for i in range(net.MAX_NODES)),
            *(lay.dcs_ip(i) for i in range(net.MAX_NODES))}


def test_nets_are_disjoint_and_own_only_their_namespaces() -> None:
    nets = [0, 1, 2, 10, 11, 12, net.MAX_NET]
    for a, b in itertools.combinations(nets, 2):
        la, lb = net.layout(a), net.layout(b)
        assert not _names(la) & _names(lb)
        assert not _addresses(la) & _addresses(lb)
        assert la.lock != lb.lock
        # the clean-up at start lists namespaces by ownership: never another net's
        assert not any(la.owns(ns) for ns in _names(lb))
        assert not any(lb.owns(ns) for ns in _names(la))
    for n in nets:
        lay = net.layout(n)
        assert all(lay.owns(ns) for ns in _names(lay))
        assert all(ip.startswith("10.213.") and 0 < int(ip.split(".")[3]) < 255 for ip in _addresses(lay))


def test_net_outside_the_range_is_refused() -> None:
    for bad in (-1, net.MAX_NET + 1):
        with pytest.raises(ValueError):
            net.layout(bad)


def test_use_net_switches_the_module_names() -> None:
    try:
        lay = net.use_net(3)
        assert (net.BRIDGE_NS, net.CLIENT_NS, net.CLIENT_IP) == (lay.bridge_ns, lay.client_ns, "10.213.6.100")
        assert (net.node_ns(2), net.db_ip(2), net.etcd_ip(2)) == ("qhbchaos3-n2", "10.213.6.13", "10.213.7.13")
    finally:
        net.use_net(0)
    assert net.node_ns(0) == "qhbchaos-n0"
