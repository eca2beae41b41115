"""collectives: collective communication over MPI that knows the network underneath.

>>> import collectives as cl
>>> from mpi4py import MPI
>>> comm = cl.Communicator(MPI.COMM_WORLD)
>>> y = comm.allreduce(x, op="sum")
"""

__version__ = "0.1.0"

from .errors import (BuildMismatch, CollectivesError, CollectiveTimeout, CommunicationError,
                     CommunicatorBroken, EmulationWarning, InvalidArgument, InvalidType,
                     MismatchError, ModelError, PeerFailure, RequestError, TopologyError,
                     TopologyFileError)
from ._mpicheck import load_core as _load_core

_load_core()   # the compiled core and mpi4py checked first: a clear BuildMismatch, not an ImportError
from .communicator import Communicator  # noqa: E402
from .requests import PersistentRequest, Request, test_all, wait_all  # noqa: E402

_LAZY = ("topology", "model", "planner", "algorithms", "schedule", "units", "workload")


def __getattr__(name):
    # the topology library, the model and the planner load networkx/scipy: only on first use
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'collectives' has no attribute {name!r}")


__all__ = ["Communicator", "CollectivesError", "CollectiveTimeout", "CommunicationError",
           "CommunicatorBroken", "PeerFailure", "EmulationWarning", "InvalidArgument", "InvalidType", "MismatchError",
           "ModelError", "RequestError", "Request", "PersistentRequest", "wait_all", "test_all", "TopologyError", "TopologyFileError", "BuildMismatch", "__version__"] + list(_LAZY)
