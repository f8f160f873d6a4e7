"""The open-addressing table behaves like a dict under any sequence of puts and deletes."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.kernels.hashtable import ht_del, ht_get, ht_put, new_table, table_entries

ops = st.lists(st.tuples(st.sampled_from(["put", "del", "get"]),
                         st.integers(min_value=-2**63, max_value=2**63 - 1) | st.integers(0, 40),
                         st.integers(0, 1000)), max_size=300)


@settings(max_examples=60, deadline=None)
@given(ops)
def test_hashtable_matches_dict(seq):
    T = new_table(len(seq) + 1)
    ref = {}
    for op, k, v in seq:
        k = np.int64(k)
        if op == "put":
            assert ht_put(T, k, np.int64(v)) == (0 if int(k) in ref else 1)
            ref[int(k)] = v
        elif op == "del":
            assert ht_del(T, k) == (1 if int(k) in ref else 0)
            ref.pop(int(k), None)
        else:
            assert ht_get(T, k) == ref.get(int(k), -1)
    keys, vals = table_entries(T)
    assert dict(zip(keys.tolist(), vals.tolist())) == ref
    for k, v in ref.items():
        assert ht_get(T, np.int64(k)) == v


def test_hashtable_colliding_keys_survive_deletes():
    T = new_table(8)  # 16 slots: keys k*16 all share a home slot
    keys = [np.int64(16 * j) for j in range(6)]
    for j, k in enumerate(keys):
        ht_put(T, k, np.int64(j))
    ht_del(T, keys[1])
    ht_del(T, keys[3])
    assert [int(ht_get(T, k)) for k in keys] == [0, -1, 2, -1, 4, 5]
