"""Per-operation rates of the crypto adapter, for both profiles.

Run: ``.venv/bin/python bench/crypto.py [--seconds 0.5]``. Each operation runs for about
``--seconds`` (after a short warm-up) on one core; the whole run takes well under 30 s.
Numbers are for comparing profiles and spotting regressions on one machine, not absolutes.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

from gsomia.crypto import (
    ExchangeSigner,
    PartyKeys,
    Profile,
    delivery_info,
    encrypt_payload,
    new_content_key,
    seal_at_rest,
    sign,
    spec,
    unwrap_key,
    verify,
    wrap_key,
)


def rate(op: Callable[[], object], seconds: float) -> float:
    """Operations per second of ``op``, timed in growing batches for about ``seconds``."""
    for _ in range(3):  # warm-up
        op()
    done = 0
    batch = 1
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds:
        for _ in range(batch):
            op()
        done += batch
        batch = min(batch * 2, 4096)
        elapsed = time.perf_counter() - start
    return done / elapsed


def profile_ops(
    profile: Profile, message: bytes, info: bytes, kilobyte: bytes, aad: bytes
) -> list[tuple[str, Callable[[], object]]]:
    """The operations to time for one profile, over keys generated once."""
    keys = PartyKeys.generate("KOR", profile)
    public = keys.public_keys()
    signature = sign(keys, message)
    content_key = new_content_key()
    wrapped = wrap_key(public, content_key, info)
    algorithm = spec(profile).signature_algorithm
    return [
        ("keygen", lambda: PartyKeys.generate("KOR", profile)),
        (f"sign ({algorithm})", lambda: sign(keys, message)),
        (f"verify ({algorithm})", lambda: verify(public, message, signature)),
        ("HPKE wrap", lambda: wrap_key(public, content_key, info)),
        ("HPKE unwrap", lambda: unwrap_key(keys, wrapped, info)),
        ("AES-256-GCM 1 KB encrypt", lambda: encrypt_payload(content_key, kilobyte, aad)),
    ]


def main() -> None:
    """Print one table row per operation and profile."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=0.5, help="time per operation (default 0.5)")
    args = parser.parse_args()
    seconds: float = args.seconds

    print(f"gsomia crypto bench - Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"{'profile':<8} {'operation':<28} {'ops/s':>12} {'µs/op':>10}")
    kek = os.urandom(32)
    kilobyte = os.urandom(1024)
    aad = b"gsomia/v1 report bench"
    message = b'{"originator":"JPN","report":"r-1","topic":"dprk.missile.launch"}' + bytes(200)
    info = delivery_info("d-bench", "KOR")
    started = time.perf_counter()

    for profile in Profile:
        for name, op in profile_ops(profile, message, info, kilobyte, aad):
            ops_per_s = rate(op, seconds)
            print(f"{profile.value:<8} {name:<28} {ops_per_s:>12,.0f} {1e6 / ops_per_s:>10.1f}")

    exchange = ExchangeSigner.generate()
    body = b"gsomia.example/ledger\n1000000\n" + bytes(44) + b"\n"
    checkpoint_sig = exchange.sign(body)
    for name, op in [
        ("checkpoint sign (Ed25519)", lambda: exchange.sign(body)),
        ("checkpoint verify", lambda: exchange.verify(body, checkpoint_sig)),
        ("seal at rest (32 B key)", lambda: seal_at_rest(kek, kilobyte[:32], aad)),
    ]:
        ops_per_s = rate(op, seconds)
        print(f"{'exchange':<8} {name:<28} {ops_per_s:>12,.0f} {1e6 / ops_per_s:>10.1f}")
    print(f"total {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
