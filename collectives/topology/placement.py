"""Placement: which host each rank runs on.

Strategies
----------
``"linear"``
    Rank ``r`` on ``topo.hosts[r // slots]``: fills one switch (node, group)
    before the next, since builders number hosts switch by switch.
``"round-robin"``
    Over the host groups of ``level`` (default: the topology's natural level):
    rank 0 in group 0, rank 1 in group 1, ... wrapping around, each group's
    hosts taken in order. Spreads ranks over leaves (the worst case for
    hierarchical algorithms, the best for fault isolation).
``"random"``
    A uniformly random set of hosts in random order, seeded (``seed=0``).
a list of host ids
    Rank ``r`` on the ``r``-th host of the list (a host may repeat: several
    ranks on one host).
a hostfile path (``str`` or ``os.PathLike`` naming an existing file)
    Open MPI / MPICH style: one host per line, optionally ``slots=N`` or
    ``host:N``; ``#`` starts a comment. Each host takes ``N`` consecutive ranks.

By machine name (:func:`match_hosts`, :func:`place_by_name`)
    Each rank on the topology host its machine is called (what a
    :class:`~collectives.Communicator` with a topology does by default, from
    every rank's processor name). A name matches a host exactly; else, ignoring
    case, the short name (before the first dot) of one matches the other whole
    (``node01.cluster`` and ``node01``). Several ranks may share a host, up to
    the host's ``slots`` node attribute when the topology gives one.

``slots`` (ranks per host, default 1) applies to the first three strategies.
Unknown hosts and too few hosts raise :class:`~collectives.errors.TopologyError`
(a bad hostfile line names the file and the line number);
an unreadable hostfile raises :class:`~collectives.errors.TopologyFileError`.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import TopologyError, TopologyFileError

__all__ = ["Placement", "place", "read_hostfile", "match_hosts", "place_by_name", "STRATEGIES"]

STRATEGIES = ("linear", "round-robin", "random")


class Placement:
    """Rank -> host mapping on a topology.

    Attributes
    ----------
    topology : Topology
    hosts : list
        Host id of each rank.
    host_index : numpy.ndarray
        Index into ``topology.hosts`` of each rank (int64).
    """

    def __init__(self, topology, hosts):
        self.topology = topology
        hi = topology.host_index
        bad = [h for h in hosts if h not in hi]
        if bad:
            raise TopologyError(f"unknown host {bad[0]!r}: not a host of {topology.name}")
        self.hosts = list(hosts)
        self.host_index = np.array([hi[h] for h in self.hosts], dtype=np.int64)

    @property
    def nranks(self) -> int:
        return len(self.hosts)

    def __len__(self):
        return len(self.hosts)

    def __getitem__(self, rank):
        return self.hosts[rank]

    def __iter__(self):
        return iter(self.hosts)

    def __repr__(self):
        return f"<Placement {self.nranks} ranks on {self.topology.name}>"

    def group_index(self, level=None) -> np.ndarray:
        """For each rank, the number of its host group (see ``Topology.host_groups``)."""
        return self.topology.group_index(level)[self.host_index]

    def rank_groups(self, level=None) -> list:
        """Ranks grouped by host group: ``[[0, 1, 2, 3], [4, 5, 6, 7], ...]``.

        Groups are ordered by their lowest rank, ranks ascending within a group;
        groups without ranks are left out.
        """
        gi = self.group_index(level)
        out = {}
        for r, g in enumerate(gi.tolist()):
            out.setdefault(g, []).append(r)
        return list(out.values())


def read_hostfile(path):
    """``[(host, slots), ...]`` from an Open MPI / MPICH hostfile."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except OSError as exc:
        raise TopologyFileError(f"cannot read hostfile {os.fspath(path)!r}: "
                                f"{exc.strerror or exc}") from None
    out = []
    for no, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.split()
        host, slots = parts[0], 1
        if ":" in host:
            host, _, n = host.partition(":")
            parts = [host, f"slots={n}"] + parts[1:]
        for p in parts[1:]:
            key, _, val = p.partition("=")
            if key in ("slots", "max_slots", "max-slots"):
                try:
                    n = int(val)
                    if n < 1:
                        raise ValueError
                except ValueError:
                    raise TopologyError(f"{os.fspath(path)}:{no}: bad slot count {p!r}: expected "
                                        "slots=N with N >= 1") from None
                if key == "slots":
                    slots = n
            else:
                raise TopologyError(f"{os.fspath(path)}:{no}: cannot read {p!r}: expected "
                                    "'host', 'host slots=N' or 'host:N'")
        out.append((host, slots, no))
    if not out:
        raise TopologyError(f"hostfile {os.fspath(path)!r} lists no host")
    return out


def place(topo, nranks=None, strategy="linear", *, slots=1, level=None, seed=0):
    """Map ``nranks`` ranks to hosts of ``topo``; see the module docstring.

    Parameters
    ----------
    topo : Topology
    nranks : int, optional
        Number of ranks (default: hosts * slots, or the length of the list or
        hostfile).
    strategy : str, list of host ids, or path
        ``"linear"``, ``"round-robin"``, ``"random"``, a host list or a hostfile.
    slots : int
        Ranks per host for the named strategies.
    level : str, optional
        Group level for ``"round-robin"``.
    seed : int
        For ``"random"``.

    Returns
    -------
    Placement
    """
    if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
        raise TopologyError(f"slots must be an integer >= 1, got {slots!r}")
    if nranks is not None and (isinstance(nranks, bool) or not isinstance(nranks, (int, np.integer))
                               or nranks < 1):
        raise TopologyError(f"nranks must be an integer >= 1, got {nranks!r}")
    if isinstance(strategy, os.PathLike) or (isinstance(strategy, str) and strategy not in STRATEGIES
                                             and (os.path.sep in strategy or os.path.exists(strategy))):
        entries = read_hostfile(strategy)
        hi = topo.host_index
        hosts = []
        for host, n, no in entries:
            if host not in hi:
                raise TopologyError(f"{os.fspath(strategy)}:{no}: unknown host {host!r}: not a host "
                                    f"of {topo.name}")
            hosts += [host] * n
        return _take(topo, hosts, nranks, f"hostfile {os.fspath(strategy)!r}")
    if isinstance(strategy, (list, tuple)):
        hi = topo.host_index
        for h in strategy:
            if h not in hi:
                raise TopologyError(f"unknown host {h!r} in the host list: not a host of {topo.name}")
        return _take(topo, list(strategy), nranks, "the host list")
    if strategy not in STRATEGIES:
        raise TopologyError(f"unknown placement {strategy!r}: expected one of {', '.join(STRATEGIES)}, "
                            "a list of hosts or a hostfile path")
    H = len(topo.hosts)
    n = H * slots if nranks is None else int(nranks)
    if n > H * slots:
        raise TopologyError(f"{n} ranks do not fit on {H} hosts with slots={slots} "
                            f"({topo.name}); raise slots or use a larger topology")
    if strategy == "linear":
        order = list(topo.hosts)
    elif strategy == "random":
        rng = np.random.default_rng(seed)
        order = [topo.hosts[i] for i in rng.permutation(H).tolist()]
    else:
        groups = [list(g) for g in topo.host_groups(level)]
        order = []
        pos = [0] * len(groups)
        while len(order) < H:
            for gi, g in enumerate(groups):
                if pos[gi] < len(g):
                    order.append(g[pos[gi]])
                    pos[gi] += 1
    hosts = [h for h in order for _ in range(slots)] if strategy != "round-robin" else \
        [h for _ in range(slots) for h in order]
    return Placement(topo, hosts[:n])


def _take(topo, hosts, nranks, what):
    if nranks is None:
        return Placement(topo, hosts)
    if nranks > len(hosts):
        raise TopologyError(f"{nranks} ranks but {what} provides only {len(hosts)} slots")
    return Placement(topo, hosts[:nranks])


# ---------------------------------------------------------------- by machine name

def _short(name: str) -> str:
    return name.split(".", 1)[0]


class _HostNames:
    """Lookup of a topology's hosts by name: exact, then case-insensitive, then short name."""

    def __init__(self, topo):
        self.topo = topo
        self.exact = {str(h): h for h in topo.hosts}
        self.folded: dict = {}
        self.short: dict = {}
        for h in topo.hosts:
            text = str(h).lower()
            self.folded.setdefault(text, []).append(h)
            if "." in text:
                self.short.setdefault(_short(text), []).append(h)

    def find(self, name: str):
        """The host ``name`` names, or None; TopologyError if it could be several."""
        if name in self.exact:
            return self.exact[name]
        text = name.lower()
        found = self.folded.get(text)
        if not found and "." in text:
            # node01.cluster.org on a machine, node01 in the topology
            found = self.folded.get(_short(text))
        if not found and "." not in text:
            # node01 on a machine, node01.cluster.org in the topology
            found = self.short.get(text)
        if not found:
            return None
        if len(found) > 1:
            raise TopologyError(f"machine name {name!r} matches several hosts of {self.topo.name}: "
                                f"{', '.join(map(repr, map(str, found[:5])))}; give the full name "
                                "(COLLECTIVES_HOSTNAME) or pass placement=")
        return found[0]

    def some(self, k=5) -> str:
        hosts = [str(h) for h in self.topo.hosts[:k]]
        more = len(self.topo.hosts) - len(hosts)
        return ", ".join(hosts) + (f", ... ({more} more)" if more > 0 else "")


def match_hosts(topo, names):
    """The topology host each rank runs on, from the names of the ranks' machines.

    Parameters
    ----------
    topo : Topology
    names : sequence of str
        Each rank's machine name, in rank order (its MPI processor name, or
        Slurm's ``SLURMD_NODENAME``).

    Returns
    -------
    list or None
        The host id of each rank. None when no name matches a host and every
        rank runs on one machine: an emulated network on one computer (hosts
        ``h0``, ``h1``, ... on a laptop called ``vm``), which the caller places
        linearly.

    Raises
    ------
    TopologyError
        A machine that is not a host of ``topo`` (the message lists the
        unknown names and a few hosts that are), a name that matches several
        hosts, or more ranks on a host than its ``slots`` node attribute allows.
    """
    names = [str(n) for n in names]
    if not names:
        raise TopologyError("no rank to place: the list of machine names is empty")
    lookup = _HostNames(topo)
    found = {name: lookup.find(name) for name in dict.fromkeys(names)}
    unknown = [name for name, host in found.items() if host is None]
    if len(unknown) == len(found) == 1:
        return None
    if unknown:
        where = {name: [r for r, n in enumerate(names) if n == name] for name in unknown[:5]}
        listed = "; ".join(f"{name!r} (rank{'s' if len(r) > 1 else ''} {_ranks_text(r)})"
                           for name, r in where.items())
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise TopologyError(
            f"{len(unknown)} machine(s) the ranks run on are not hosts of {topo.name}: {listed}{more}. "
            f"Its hosts are {lookup.some()}. Describe the network the job runs on "
            "(e.g. from `scontrol show topology`), or pass placement=\"linear\" to place rank r on "
            "the r-th host regardless of where it runs")
    hosts = [found[n] for n in names]
    _check_slots(topo, hosts)
    return hosts


def place_by_name(topo, names) -> Placement:
    """:func:`match_hosts` as a :class:`Placement`; one unmatched machine is placed linearly.

    Raises
    ------
    TopologyError
        As :func:`match_hosts`, or when a linear placement does not fit.
    """
    hosts = match_hosts(topo, names)
    if hosts is None:
        return place(topo, len(names), "linear")
    return Placement(topo, hosts)


def _check_slots(topo, hosts):
    counts: dict = {}
    for h in hosts:
        counts[h] = counts.get(h, 0) + 1
    nodes = topo.graph.nodes
    for h, n in counts.items():
        room = nodes[h].get("slots")
        if room is not None and n > int(room):
            ranks = [r for r, x in enumerate(hosts) if x == h]
            raise TopologyError(f"{n} ranks ({_ranks_text(ranks)}) run on host {h!r}, which has "
                                f"slots={room} in {topo.name}")


def _ranks_text(ranks, k=6):
    text = ", ".join(map(str, ranks[:k]))
    return text + (", ..." if len(ranks) > k else "")
