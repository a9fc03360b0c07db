"""Where a rollout worker or reward replica goes: a *preference* for the nodes that advertise a custom
Ray resource (`rollout.node_resource`, `pools.<teacher>.node_resource`), never a requirement.

An actor asks for soft node affinity to one of the live nodes that have the resource (round-robin
by its index), not for the resource itself: when that node is gone (preempted, removed), the
replacement of its actors is placed on a node that still has one, or on any node with the CPUs,
instead of waiting without end for a resource no live node has any more.
"""
from __future__ import annotations

import logging
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

log = logging.getLogger(__name__)


def nodes_with(resource: str) -> list[str]:
    """Node ids (hex) of the live nodes whose total resources include `resource`, in id order."""
    return sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get(resource, 0) > 0)


def placement_options(resource: str, index: int, what: str) -> dict[str, Any]:
    """Ray `.options(...)` of actor `what` number `index`: soft affinity to a live node with
    `resource` ({} when `resource` is empty; {} and a warning when no live node has it)."""
    if not resource:
        return {}
    nodes = nodes_with(resource)
    if not nodes:
        log.warning("%s %d: no live node advertises resource '%s'; placing it on any node", what, index, resource)
        return {}
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(nodes[index % len(nodes)], soft=True)}
