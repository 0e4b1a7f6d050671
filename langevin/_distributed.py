"""Many hosts: start ``jax.distributed`` from a cluster's environment, and a local launcher.

JAX runs one process per host (multi-controller): every process runs the same program, sees its
own local devices and, once ``jax.distributed.initialize`` has connected it to the others, the
global device list of all hosts (``jax.devices()``). A mesh over those devices makes chains that
are sharded over every host's accelerators, in one compiled program per host.

JAX functions used: ``jax.distributed.initialize`` (connects the processes; it detects SLURM,
Cloud TPU pods, Open MPI and, with the ``kubernetes`` package, Kubernetes by itself),
``jax.distributed.is_initialized``, ``jax.process_index``, ``jax.process_count``,
``jax.devices`` / ``jax.local_devices``, ``jax.make_array_from_callback`` (a global array from
the same host values in every process) and ``jax.experimental.multihost_utils.process_allgather``
(the whole array on every host). On CPU the collectives between processes are gloo's
(``jax.config.update("jax_cpu_collectives_implementation", "gloo")``).

Where the settings come from, first found wins:

1. the arguments of `initialize`;
2. ``JAX_COORDINATOR_ADDRESS`` (``host:port`` of process 0; jax reads it too),
   ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` (read here);
   a Kubernetes indexed Job gives the process id as ``JOB_COMPLETION_INDEX``;
3. jax's own detection (SLURM ``srun``, a TPU pod slice, ``mpirun``, Kubernetes).

`launch_local` starts N processes on this machine with the variables of 2. set (the coordinator on
127.0.0.1 at a free port): the tests run the multi-host code paths this way on CPU.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import NamedTuple

import jax
import numpy as np

__all__ = [
    "Topology",
    "free_port",
    "gather",
    "global_mesh",
    "initialize",
    "launch_local",
    "to_global",
    "topology",
]

# Environment variables read by `initialize` (the coordinator's is jax's own name).
ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "JAX_PROCESS_ID"
ENV_K8S_INDEX = "JOB_COMPLETION_INDEX"  # a Kubernetes indexed Job's pod index


class Topology(NamedTuple):
    """Where this process stands: its index, the process count, local and global device counts."""

    process_id: int
    num_processes: int
    local_devices: int
    global_devices: int


def topology() -> Topology:
    """The current `Topology` (one process: ``Topology(0, 1, n, n)``)."""
    return Topology(
        jax.process_index(), jax.process_count(), jax.local_device_count(), jax.device_count()
    )


def _env_int(name: str) -> int | None:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None
    if value < 0:
        raise ValueError(f"environment variable {name}={raw!r} must be >= 0")
    return value


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_device_ids: Sequence[int] | None = None,
    cpu_devices: int | None = None,
    timeout: int = 300,
) -> Topology:
    """Connect this process to the others (``jax.distributed.initialize``); call it first.

    Every process of a job calls it once, before any JAX computation, with the same program after
    it. A second call in an initialised process returns the topology unchanged.

    Args:
        coordinator_address: ``host:port`` of process 0 (None: from the environment).
        num_processes: how many processes take part (None: from the environment).
        process_id: this process's index in ``[0, num_processes)`` (None: from the environment).
        local_device_ids: the accelerators this process drives (None: all it sees, or what the
            cluster assigns).
        cpu_devices: on CPU, how many devices this process exposes (``jax_num_cpu_devices``).
        timeout: seconds to wait for all processes to connect.

    Returns:
        The `Topology` after connecting.

    Raises:
        ValueError: a bad value (naming it), or no cluster found and no settings given.

    Example:
        >>> import langevin  # doctest: +SKIP
        >>> langevin.initialize_distributed()  # in every process of a SLURM job  # doctest: +SKIP
        Topology(process_id=0, num_processes=4, local_devices=8, global_devices=32)
    """
    if jax.distributed.is_initialized():
        return topology()
    if cpu_devices is not None:
        if int(cpu_devices) < 1:
            raise ValueError(f"cpu_devices must be >= 1, got {cpu_devices}")
        jax.config.update("jax_num_cpu_devices", int(cpu_devices))
    # gloo: the CPU collectives jax ships (the default in recent jax; stated so that a
    # multi-process CPU run never falls back to none).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if coordinator_address is None:
        coordinator_address = os.environ.get(ENV_COORDINATOR) or None
    if num_processes is None:
        num_processes = _env_int(ENV_NUM_PROCESSES)
    if process_id is None:
        process_id = _env_int(ENV_PROCESS_ID)
    if process_id is None:
        process_id = _env_int(ENV_K8S_INDEX)
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"num_processes must be >= 1, got {num_processes}")
    if process_id is not None and num_processes is not None and process_id >= num_processes:
        raise ValueError(f"process_id {process_id} is not below num_processes {num_processes}")
    explicit = None not in (coordinator_address, num_processes, process_id)
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator_address,
            num_processes=num_processes,
            process_id=process_id,
            local_device_ids=None if local_device_ids is None else list(local_device_ids),
            # With every setting given, jax's cluster detection has nothing to add.
            cluster_detection_method="deactivate" if explicit else None,
            initialization_timeout=int(timeout),
        )
    except ValueError as err:
        if explicit:
            raise
        raise ValueError(
            f"no cluster found to start jax.distributed ({err}): run under SLURM (srun), a TPU "
            f"pod, mpirun or Kubernetes, or set {ENV_COORDINATOR}=host:port, "
            f"{ENV_NUM_PROCESSES} and {ENV_PROCESS_ID} in every process"
        ) from err
    return topology()


# ------------------------------------------------------------------------------ global arrays
def global_mesh(axis: str = "chains", devices=None) -> jax.sharding.Mesh:
    """A 1-D mesh over all devices of all processes (``jax.devices()``), in jax's order."""
    devs = jax.devices() if devices is None else list(devices)
    return jax.sharding.Mesh(np.asarray(devs), (axis,))


def to_global(host: np.ndarray, sharding: jax.sharding.Sharding) -> jax.Array:
    """A global array from a host array that every process holds whole (each keeps its shards)."""
    host = np.asarray(host)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def gather(x) -> np.ndarray:
    """The whole of an array on this host: a no-op copy for one process, an all-gather otherwise."""
    if x is None:
        return None
    if not isinstance(x, jax.Array) or x.is_fully_addressable:
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


# ------------------------------------------------------------------------------ local launcher
def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def launch_local(
    argv: Sequence[str],
    n_processes: int,
    *,
    cpu_devices: int = 1,
    env: dict | None = None,
    timeout: float = 300.0,
) -> list[subprocess.CompletedProcess]:
    """Run ``argv`` as ``n_processes`` CPU processes of one job on this machine; wait for all.

    Each process gets ``JAX_COORDINATOR_ADDRESS`` (127.0.0.1 at a free port),
    ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``, ``JAX_PLATFORMS=cpu`` and
    ``JAX_NUM_CPU_DEVICES=cpu_devices``, so that `initialize()` in it needs no argument. The
    same program under SLURM or Kubernetes gets these settings from the cluster instead.

    Args:
        argv: the command, e.g. ``[sys.executable, "script.py"]``.
        n_processes: how many processes (>= 1).
        cpu_devices: CPU devices per process.
        env: extra environment variables for every process.
        timeout: seconds for the whole job; past it every process is killed.

    Returns:
        One ``CompletedProcess`` per process (stdout and stderr as text), by process id.

    Raises:
        RuntimeError: a process failed or the job timed out; the message holds each failed
            process's exit status and the end of its stderr (the others are stopped).
    """
    if n_processes < 1:
        raise ValueError(f"n_processes must be >= 1, got {n_processes}")
    port = free_port()
    procs = []
    files = [(tempfile.TemporaryFile(), tempfile.TemporaryFile()) for _ in range(n_processes)]
    for i in range(n_processes):
        penv = dict(os.environ)
        penv.update(env or {})
        penv.update(
            {
                ENV_COORDINATOR: f"127.0.0.1:{port}",
                ENV_NUM_PROCESSES: str(n_processes),
                ENV_PROCESS_ID: str(i),
                "JAX_PLATFORMS": "cpu",
                "JAX_NUM_CPU_DEVICES": str(int(cpu_devices)),
            }
        )
        procs.append(
            subprocess.Popen(
                list(argv),
                env=penv,
                # Files, not pipes: a chatty process never blocks on a full pipe while the
                # others are polled.
                stdout=files[i][0],
                stderr=files[i][1],
            )
        )
    deadline = time.monotonic() + timeout
    failed = timed_out = False
    try:
        # Poll them all: one process that fails (or never connects) must not leave the others
        # waiting for it until the timeout.
        while True:
            codes = [p.poll() for p in procs]  # every one polled (no short-circuit)
            if all(c is not None for c in codes):
                break
            timed_out = time.monotonic() > deadline
            if any(c not in (None, 0) for c in codes) or timed_out:
                failed = True
                break
            time.sleep(0.05)
    finally:
        for p in procs:  # only the processes started here, one by one
            if p.poll() is None:
                p.kill()
    outs = []
    for p, streams in zip(procs, files, strict=True):
        p.wait()
        texts = []
        for f in streams:
            f.seek(0)
            texts.append(f.read().decode(errors="replace"))
            f.close()
        outs.append(subprocess.CompletedProcess(p.args, p.returncode, *texts))
    failed = failed or any(r.returncode != 0 for r in outs)
    if failed:
        lines = []
        for i, r in enumerate(outs):
            if r.returncode != 0:
                tail = "\n    ".join((r.stderr or "").strip().splitlines()[-15:])
                lines.append(f"process {i} exited with {r.returncode}:\n    {tail}")
        why = f"timed out after {timeout:g} s" if timed_out else "failed"
        raise RuntimeError(
            f"local job of {n_processes} processes {why} ({' '.join(argv[:3])} ...):\n"
            + "\n".join(lines)
        )
    return outs


def _main() -> None:  # pragma: no cover - used through launch_local by the tests
    """``python -m langevin._distributed``: print this process's topology (a smoke check)."""
    topo = initialize()
    print(f"process {topo.process_id}/{topo.num_processes}: {topo}", file=sys.stdout)


if __name__ == "__main__":  # pragma: no cover
    _main()
