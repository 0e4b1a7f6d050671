"""Saving and loading surrogates: an orbax checkpoint of the arrays plus a JSON metadata file."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import jax
import numpy as np

from ._model import NetConfig, abstract_ensemble
from ._surrogate import Surrogate

__all__ = ["CheckpointError", "FORMAT", "VERSION", "load", "save"]

FORMAT = "groundstate.tnn"
VERSION = 1
_META = "tnn.json"
_STATE = "state"
# Written by `save` into a directory it creates or adopts (an empty one): the proof that the
# directory is a groundstate surrogate, so that a later save may replace its state/ and tnn.json.
# Nothing is ever deleted in a directory without it.
_MARKER = ".groundstate-tnn"
_ARRAYS = ("loc", "norm", "scale", "e_shift", "e_scale", "noise_levels", "box_lo", "box_hi")


class CheckpointError(ValueError):
    """A surrogate checkpoint that is missing, partial, of another version or mismatched."""


def _flat_params(params) -> dict[str, jax.Array]:
    """Network weights as {"hidden/0/kernel": array, ...} (string keys orbax stores as is)."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(params)
    return {"/".join(_key_str(k) for k in path): leaf for path, leaf in leaves}


def _shapes(tree) -> dict[str, tuple[int, ...]]:
    """{"params/hidden/0/kernel": shape, ...} of a nested dict of arrays or array metadata."""
    out = {}
    for name, v in tree.items():
        if isinstance(v, dict):
            out.update({f"{name}/{k}": shp for k, shp in _shapes(v).items()})
        else:
            out[name] = tuple(getattr(v, "shape", None) or ())
    return out


def _compare(want: dict, have: dict) -> list[str]:
    """Differences between the expected and the stored array names and shapes."""
    problems = [f"{n} is missing" for n in sorted(set(want) - set(have))]
    problems += [f"{n} is not expected" for n in sorted(set(have) - set(want))]
    problems += [
        f"{n} has shape {have[n]}, expected {want[n]}"
        for n in sorted(set(want) & set(have))
        if tuple(have[n]) != tuple(want[n])
    ]
    return problems


def _key_str(k) -> str:
    """One path entry of a pytree key path as text."""
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def save(s: Surrogate, directory: str | os.PathLike) -> str:
    """Write surrogate s to directory: orbax arrays in directory/state, metadata in tnn.json.

    The metadata (format, version, network configuration, kind, names, units, noise levels,
    normalisation constants and provenance) is written last and atomically, so a directory
    without it is an unfinished save that `load` refuses. The directory must be new, empty, or
    one that `save` wrote before (it carries a ``.groundstate-tnn`` marker): only then is the
    checkpoint there replaced. A non-empty directory without the marker raises
    `CheckpointError` naming it, and nothing in it is touched.

    Args:
      s: the surrogate.
      directory: where to write (created if needed).

    Returns:
      The absolute directory path.

    Example:
      >>> s.save("runs/boiler_tnn"); s2 = energy.tnn.load("runs/boiler_tnn")
    """
    if not isinstance(s, Surrogate):
        raise TypeError(f"save expects an energy.tnn Surrogate, got {type(s).__name__}")
    root = Path(directory).expanduser().resolve()
    _claim(root)
    meta_path = root / _META
    if meta_path.exists():
        meta_path.unlink()
    state_dir = root / _STATE
    if state_dir.is_symlink() or state_dir.is_file():
        raise CheckpointError(f"{state_dir}: not a checkpoint folder of this surrogate; move it")
    if state_dir.exists():
        shutil.rmtree(state_dir)  # ours: inside a directory that carries the marker
    tree = {"params": _flat_params(s.params)}
    tree.update({name: getattr(s, name) for name in _ARRAYS})
    tree = jax.tree.map(lambda a: np.asarray(a), tree)
    import orbax.checkpoint as ocp  # slow to import: only when saving or loading

    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(state_dir, tree)
        ckpt.wait_until_finished()
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "kind": s.kind,
        "config": s.config._asdict(),
        "names": None if s.names is None else list(s.names),
        "units": None if s.units is None else list(s.units),
        "noise_levels": np.asarray(s.noise_levels, np.float64).tolist(),
        "scale": np.asarray(s.scale, np.float64).tolist(),
        "c_floor": float(s.c_floor),
        "c_mean": float(s.c_mean),
        "c_std": float(s.c_std),
        "provenance": s.provenance,
    }
    tmp = root / (_META + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, meta_path)
    return str(root)


def _claim(root: Path) -> None:
    """Make ``root`` a surrogate directory this code may write into, or raise CheckpointError.

    A new or empty directory gets the marker file; one that has it already is ours (saved here
    before). Any other existing path (a file, a non-empty folder without the marker, a
    checkpoint of an older version that has none) is refused: nothing in it is touched.
    """
    if root.exists() and not root.is_dir():
        raise CheckpointError(f"{root}: exists and is not a directory; choose another path")
    marker = root / _MARKER
    if root.is_dir():
        if marker.is_file():
            return
        if any(root.iterdir()):
            raise CheckpointError(
                f"{root}: not empty and not a groundstate surrogate directory (no {_MARKER} "
                f"inside); save into a new or empty directory: nothing here is replaced"
            )
    root.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"format": FORMAT, "written_by": "energy.tnn.save"}) + "\n")


def load(directory: str | os.PathLike, *, device: jax.Device | None = None) -> Surrogate:
    """Restore a surrogate written by `Surrogate.save`, onto device (default: the first one).

    The checkpoint is restored against the shapes its metadata implies, so a checkpoint of the
    wrong version, with missing or extra arrays, or with arrays of the wrong shape raises a
    CheckpointError naming the directory and what is wrong. Arrays are placed on `device`, so a
    checkpoint written on an accelerator restores on CPU and the other way round.

    Args:
      directory: what `save` wrote.
      device: a jax.Device (default jax.devices()[0]).

    Returns:
      The Surrogate, equal (bit for bit) to the one saved.

    Example:
      >>> s = energy.tnn.load("runs/boiler_tnn", device=jax.devices("cpu")[0])
    """
    root = Path(directory).expanduser().resolve()
    if not root.is_dir():
        raise CheckpointError(f"{root}: no such surrogate checkpoint directory")
    meta_path = root / _META
    if not meta_path.is_file():
        raise CheckpointError(
            f"{root}: no {_META}; not a surrogate checkpoint, or a save that did not finish"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{meta_path}: unreadable metadata ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_path}: not a {FORMAT} checkpoint")
    if meta.get("version") != VERSION:
        raise CheckpointError(
            f"{meta_path}: format version {meta.get('version')!r}, this code reads {VERSION}"
        )
    try:
        config = NetConfig(**meta["config"])
        kind = meta["kind"]
        d, k = int(config.ndim), int(config.members)
        n_levels = len(meta["noise_levels"])
        c_floor, c_mean, c_std = float(meta["c_floor"]), float(meta["c_mean"]), float(meta["c_std"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{meta_path}: incomplete metadata ({e!r})") from e
    state_dir = root / _STATE
    if not state_dir.is_dir():
        raise CheckpointError(f"{root}: the arrays ({_STATE}/) are missing")

    device = jax.devices()[0] if device is None else device
    sharding = jax.sharding.SingleDeviceSharding(device)
    graphdef, abstract_params = abstract_ensemble(config)
    shapes = {
        "loc": (d,),
        "norm": (d,),
        "scale": (d,),
        "e_shift": (k,),
        "e_scale": (),
        "noise_levels": (n_levels,),
        "box_lo": (d,),
        "box_hi": (d,),
    }
    target = {"params": _flat_params(abstract_params)}
    target.update({n: jax.ShapeDtypeStruct(shp, np.float32) for n, shp in shapes.items()})
    target = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), target
    )
    import orbax.checkpoint as ocp  # slow to import: only when saving or loading

    with ocp.StandardCheckpointer() as ckpt:
        # Compare names and shapes with what is on disk first: a mismatched restore inside orbax
        # fails in its asynchronous reader, which is slower and noisier than a clear message.
        try:
            stored = ckpt.metadata(state_dir).item_metadata.tree
        except Exception as e:  # orbax raises FileNotFoundError, ValueError ... by case
            raise CheckpointError(
                f"{root}: unreadable or incomplete arrays ({_STATE}/): {e}"
            ) from e
        problems = _compare(_shapes(target), _shapes(stored))
        if problems:
            raise CheckpointError(
                f"{root}: the arrays do not match the metadata: " + "; ".join(problems[:5])
            )
        try:
            restored = ckpt.restore(state_dir, target)
        except Exception as e:  # as above
            raise CheckpointError(f"{root}: the arrays could not be restored: {e}") from e

    flat = restored["params"]
    leaves, treedef = jax.tree_util.tree_flatten_with_path(abstract_params)
    names = ["/".join(_key_str(p) for p in path) for path, _ in leaves]
    params = jax.tree_util.tree_unflatten(treedef, [flat[name] for name in names])
    for name, arr in restored.items():
        if name != "params" and not np.all(np.isfinite(np.asarray(arr))):
            raise CheckpointError(f"{root}: array {name!r} has non-finite values")
    return Surrogate(
        graphdef=graphdef,
        config=config,
        params=params,
        **{n: restored[n] for n in _ARRAYS},
        kind=kind,
        c_floor=c_floor,
        c_mean=c_mean,
        c_std=c_std,
        names=meta.get("names"),
        units=meta.get("units"),
        provenance=json.dumps(meta.get("provenance", {})),
    )
