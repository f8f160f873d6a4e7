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
# gateway flow control (kernels/gateway.py; BLIS f90a1e3a sim/cluster/gateway_queue.go)
REQ_GW_QUEUED = 7     # waiting in the gateway queue
REQ_GW_REJECTED = 8   # refused: the gateway queue (or its priority band) was full
REQ_SHED = 9          # removed from the gateway queue for a more urgent arrival
REQ_EXPIRED = 10      # waited in the gateway queue longer than --request-ttl
REQ_EVICTED = 11      # evicted from its instance (in-flight eviction of a sheddable request)
