"""Simulation time and randomness: one clock, one seeded random generator, and position-keyed noise.

Time advances in fixed quanta of `QUANTUM` simulated seconds, whatever the speed: `--speed` only changes how many
quanta run per real second. Every decision a controller makes depends on the number of quanta elapsed, never on
the wall clock, so a seed gives the same objects, names, logs and curves at the same simulated time.

Values read at arbitrary moments (dcgm-exporter scrapes, inference latencies) must not consume the shared
generator, or a scrape would change the scenario: they use `noise(...)`, a hash of the seed, a key and the
simulated second.
"""

from __future__ import annotations

import hashlib
import random
import struct
from datetime import UTC, datetime, timedelta

QUANTUM = 1.0  # simulated seconds per step


class SimClock:
    """Simulated time: `epoch` plus the simulated seconds elapsed since the scenario started."""

    def __init__(self, epoch: datetime) -> None:
        self.epoch = epoch.astimezone(UTC).replace(microsecond=0)
        self.elapsed = 0.0

    def advance(self, seconds: float = QUANTUM) -> None:
        self.elapsed += seconds

    def now(self) -> datetime:
        return self.epoch + timedelta(seconds=self.elapsed)

    def timestamp(self, offset: float = 0.0) -> str:
        """RFC 3339 with seconds, as Kubernetes writes `lastTransitionTime` and friends."""
        return (self.now() + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def millis(self) -> int:
        """Milliseconds since the Unix epoch (MLflow timestamps)."""
        return int(self.now().timestamp() * 1000)


def default_epoch(preroll: float) -> datetime:
    """A start time `preroll` seconds before now, so that at speed 1 the simulated clock meets the wall clock."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=int(preroll))


def noise(seed: int, key: str, t: float) -> float:
    """A deterministic value in [0, 1) for (seed, key, whole simulated second), independent of call order."""
    digest = hashlib.blake2b(f"{seed}|{key}|{int(t)}".encode(), digest_size=8).digest()
    return struct.unpack(">Q", digest)[0] / 2**64


def smooth_noise(seed: int, key: str, t: float, period: float = 20.0) -> float:
    """Noise in [0, 1) that drifts smoothly over `period` seconds (interpolated between hashed knots)."""
    knot = int(t // period)
    frac = (t - knot * period) / period
    a, b = noise(seed, key, knot * 1000003), noise(seed, key, (knot + 1) * 1000003)
    return a + (b - a) * frac


class Rng(random.Random):
    """The simulation's single random generator (a seeded `random.Random`) with a few helpers."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.seed_value = seed

    def hex(self, digits: int) -> str:
        return "".join(self.choice("0123456789abcdef") for _ in range(digits))

    def suffix(self, length: int = 5) -> str:
        """A name suffix in the alphabet the API server uses for `generateName`."""
        return "".join(self.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(length))
