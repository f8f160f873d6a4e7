"""Request lifecycle codes: ``R[R_STATE, r]`` in the kernels, ``SimResult.req_state`` after a run.

The reference at BLIS cbb0de7b gives a request the states queued -> running -> completed
(sim/request.go); the earlier stages (not yet arrived, rejected by admission, between admission
and its instance's queue) and the unservable drop are ours.  The cluster loop
(kernels/cluster.py) and the instances (kernels/instance.py) write them; the metrics read them.
"""

REQ_NOT_ARRIVED = 0   # never reached the cluster before the horizon
REQ_REJECTED = 1      # refused by admission
REQ_IN_PIPELINE = 2   # admitted, routing/alpha delay not yet elapsed at the horizon
REQ_QUEUED = 3
REQ_RUNNING = 4
REQ_COMPLETED = 5
REQ_DROPPED = 6       # can never fit in the instance's KV cache (dropped_unservable)
