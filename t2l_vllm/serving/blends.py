"""Serving blended adapters: `task_description` as a list of {"text", "weight"}.

    acquire_blend(service, [{"text": "Answer with the capital city.", "weight": 1},
                            {"text": "Answer in uppercase.", "weight": 0.5}])

The blend's id is derived from its canonical member list and the checkpoint
(blend.blend_id), so the same list is made once. Under the blend's lock
(AdapterService.acquire_made), each member is acquired as a single
description would be (generated, or reused: --reuse and library adapters
apply to members too), their stored factors are stacked (blend.blend_tensors,
exact within --max-lora-rank, a truncated SVD above it), and the result is
stored like any adapter (kind "blend", members and error in its metadata).
The members are released once the blend is written; the blend does not need
them afterwards.
"""

from __future__ import annotations

from ..blend import blend_id, blend_tensors, canonical_json, parse_blend
from .service import Acquired, AdapterService


def blend_id_for(service: AdapterService, value: object) -> str:
    """Validate a blend request (ValueError) and return its adapter id."""
    return blend_id(parse_blend(value, service.config.max_description_chars), service.generator.digest)


async def acquire_blend(service: AdapterService, value: object, client: str = "") -> Acquired:
    """Make the blend resident and hold it (release with service.release)."""
    members = parse_blend(value, service.config.max_description_chars)
    bid = blend_id(members, service.generator.digest)

    async def make():
        held: list[str] = []
        try:
            for m in members:
                held.append(await service.acquire_description(m.text, client))
            return await service._io(_write, service, bid, members, held)
        finally:
            for aid in held:
                service.release(aid)

    await service.acquire_made(bid, make)
    return Acquired(bid)


def _write(service: AdapterService, bid: str, members, held: list[str]):
    """Runs on the I/O pool: read the members' factors, stack them, store the blend; its engine folder."""
    loaded = [service.store.load(aid) for aid in held]
    tensors, config, error = blend_tensors(
        [(t, cfg, m.weight) for (t, cfg), m in zip(loaded, members)],
        service.generator.base_model_name, service.max_lora_rank,
    )
    extra = {
        "members": [{"text": m.text, "weight": m.weight, "adapter_id": aid} for m, aid in zip(members, held)],
        "rank": int(config["r"]),
        "stacked_rank": sum(int(cfg["r"]) for _, cfg in loaded),
        "relative_error": round(error, 6),  # 0 unless the stacked rank was cut to --max-lora-rank
    }
    return service.store.put(bid, tensors, config, canonical_json(members), kind="blend", extra=extra)


async def create_blend(service: AdapterService, value: object, client: str = "") -> dict:
    """Admin route: make a blend without serving a request; its record."""
    acquired = await acquire_blend(service, value, client)
    service.release(acquired.adapter_id)
    return service.describe(acquired.adapter_id)
