"""A family member as a file: `expand --export DIR` writes one JSON config per member, `build_from_config` builds it.

A config holds what builds the network (family, multipliers, num_classes, dropout), the input resolution its
costs hold at, the costs the table states, and where the coefficients came from. A user family's config also
holds its source's SHA-256: a changed file builds other networks, so it is refused rather than built.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable, Mapping

from ..errors import UserError

FORMAT = "scalesearch-member"
VERSION = 1

#: What builds the member; every other figure of its row is a cost (flops, params, activations, latency, ratios).
_STRUCTURE = ("name", "phi", "depth_mult", "width_mult", "resolution", "dropout")
_REQUIRED = ("format", "version", "family", "name", "phi", "depth_mult", "width_mult", "resolution", "dropout",
             "num_classes", "costs")


def member_config(member, *, family: str, meta: Mapping, num_classes: int | None = None) -> dict:
    """One member of `expand` as a JSON-able config; `num_classes` defaults to the one `meta` records."""
    from ..families import get_family

    num_classes = num_classes if num_classes is not None else meta.get("num_classes")
    if num_classes is None:
        raise UserError("member config needs num_classes: the one the family was expanded with")
    row = member.to_dict()
    builder = _builder_family(family, row)
    spec = get_family(builder)
    config = {"format": FORMAT, "version": VERSION, "family": builder}
    if spec.is_user:
        config["source_hash"] = spec.source_hash
    config.update({key: row[key] for key in _STRUCTURE})
    config["num_classes"] = int(num_classes)
    # Read from the row, not listed here: cost columns added to FamilyMember travel without a change.
    config["costs"] = {key: value for key, value in row.items() if key not in _STRUCTURE and value is not None}
    config["coefficients"] = dict(meta)
    return config


def _builder_family(family: str, row: dict) -> str:
    """The registered family that builds `row`: a published table's member may name its own (resnet18 in resnet)."""
    from ..families import get_family

    for key, official in get_family(family).official.items():
        if ((official.name or key.upper()) == row["name"] and official.index == row["phi"]
                and (official.depth_mult, official.width_mult) == (row["depth_mult"], row["width_mult"])):
            return official.family or family
    return family


def file_name(name: str) -> str:
    """`B3.json`, `phi2.json` for φ2: a plain ASCII file name for a member's display name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name.replace("φ", "phi")).strip("._") + ".json"


def probe_export_dir(directory: str | Path) -> Path:
    """Create `directory` and check it can be written (UserError, one line): run before any member is measured."""
    from ..fileio import probe_writable_dir

    try:
        return probe_writable_dir(directory)
    except OSError as exc:
        raise UserError(f"--export: {exc}") from None


def export_family(members: Iterable, directory: str | Path, *, family: str, meta: Mapping,
                  num_classes: int | None = None) -> list[Path]:
    """Write each member's config to DIRECTORY/<name>.json (atomically); the paths written, in member order."""
    from ..fileio import atomic_write_json

    directory = probe_export_dir(directory)
    configs = [member_config(m, family=family, meta=meta, num_classes=num_classes) for m in members]
    names = [file_name(c["name"]) for c in configs]
    if len(set(names)) < len(names):  # two display names that differ only in odd characters: keep them apart
        names = [f"{Path(n).stem}-{i}.json" for i, n in enumerate(names)]
    return [atomic_write_json(directory / n, c) for n, c in zip(names, configs)]


def load_member_config(path: str | Path) -> dict:
    """Read and check a config `export_family` wrote; UserError (one line) for anything else."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no member config at {path}" + (" (a directory: name one of its .json files)"
                                                         if path.is_dir() else ""))
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path} is not readable JSON: {exc}") from None
    return check_config(config, where=str(path))


def check_config(config, *, where: str = "member config") -> dict:
    """`config` if it is a member config of this format version; UserError naming what is wrong otherwise."""
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise UserError(f"{where} is not a scalesearch member config (written by expand --export)")
    if config.get("version") != VERSION:
        raise UserError(f"{where} has config version {config.get('version')!r}; this scalesearch reads version "
                        f"{VERSION}: export it again")
    missing = [key for key in _REQUIRED if key not in config]
    if missing:
        raise UserError(f"{where} lacks {', '.join(missing)}")
    positive = {"depth_mult": (int, float), "width_mult": (int, float), "resolution": int, "num_classes": int}
    for key, kind in positive.items():
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
            raise UserError(f"{where}: {key} must be a positive number, got {value!r}")
    if config["dropout"] is not None and (isinstance(config["dropout"], bool)
                                          or not isinstance(config["dropout"], (int, float))):
        raise UserError(f"{where}: dropout must be a number or null, got {config['dropout']!r}")
    if not isinstance(config["family"], str) or not isinstance(config["costs"], dict):
        raise UserError(f"{where}: family must be a name and costs a mapping")
    return config


def build_from_config(config: Mapping | str | Path) -> torch.nn.Module:  # noqa: F821 - imported lazily
    """The network a member config describes (a config dict or its file), with `model.resolution` set to the
    input size its costs hold at and `model.member_config` to the config."""
    from ..families import resolve_family

    if isinstance(config, (str, Path)):
        config = load_member_config(config)
    else:
        config = check_config(dict(config))
    spec = resolve_family(config["family"])
    expected = config.get("source_hash")
    if spec.is_user and expected != spec.source_hash:
        then = f"sha256 {expected[:12]} when exported" if isinstance(expected, str) else "no source hash recorded"
        raise UserError(f"{config['family']} changed since member {config['name']} was exported ({then}, "
                        f"{spec.source_hash[:12]} now): its network and costs may differ; export it again")
    extra = {} if config["dropout"] is None else {"dropout": float(config["dropout"])}
    model = spec.build(width_mult=float(config["width_mult"]), depth_mult=float(config["depth_mult"]),
                       num_classes=config["num_classes"], **extra)
    model.resolution = config["resolution"]  # the row's FLOPs hold only at this input size
    model.member_config = dict(config)
    return model
