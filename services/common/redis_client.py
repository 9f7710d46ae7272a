"""The Redis client: one Redis, or a Redis Cluster (the scheduler's keys are cluster-ready)."""

from __future__ import annotations

from typing import TypeAlias

from redis.asyncio import Redis, RedisCluster

RedisClient: TypeAlias = Redis | RedisCluster
"""Either client: both run scripts, pipelines (a transaction's keys in one slot on a cluster)
and pub/sub (on a cluster, the subscription is on one node; PUBLISH reaches every node)."""


def make_redis(url: str, *, cluster: bool = False) -> RedisClient:
    """A client for `url` with string replies; with `cluster`, `url` names any node of the
    cluster and the client discovers the others. Build it in a start function, close it with
    `aclose()`."""
    if cluster:
        return RedisCluster.from_url(url, decode_responses=True)
    return Redis.from_url(url, decode_responses=True)
