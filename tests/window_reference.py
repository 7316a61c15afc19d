"""A straightforward, offline implementation of the traffic features,
written from the definitions in docs/features.md, to check the compiled
streaming engine against.  O(n * window): for tests only."""

from __future__ import annotations

import numpy as np

from sensor import _fastpath
from sensor.config import Traffic
from sensor.features.basic import FLAG_NAMES


def rate(k: int, n: int) -> float:
    return _fastpath.kdd_rate(k, n) if n else 0.0


def reference(ts, host, service, flag, sport, cfg: Traffic = Traffic()) -> list[dict]:
    """Features of records given in start order (numpy arrays of equal length)."""
    serr = np.isin(flag, [FLAG_NAMES.index(f) for f in cfg.serror_flags])
    rerr = np.isin(flag, [FLAG_NAMES.index(f) for f in cfg.rerror_flags])
    window_ns = int(cfg.time_window * 1e9)
    n_host = cfg.host_window
    distinct = cfg.diff_rates == "distinct"
    with_current = cfg.host_rates == "with_current"
    out = []
    for i in range(len(ts)):
        # 2-second window: earlier records (in start order) after t - 2 s, and this one
        t = np.arange(i + 1)
        t = t[ts[: i + 1] > ts[i] - window_ns]
        th = t[host[t] == host[i]]
        tsv = t[service[t] == service[i]]
        count, srv_count = len(th), len(tsv)
        same = int((service[th] == service[i]).sum())
        if distinct:
            d = len(set(service[th].tolist()))
            diff = rate(d, count) if d > 1 else 0.0
            dh = len(set(host[tsv].tolist()))
            srv_diff_host = rate(dh, srv_count) if dh > 1 else 0.0
        else:
            diff = rate(count - same, count)
            srv_diff_host = rate(srv_count - int((host[tsv] == host[i]).sum()), srv_count)
        f = {
            "count": min(count, cfg.count_cap), "srv_count": min(srv_count, cfg.count_cap),
            "serror_rate": rate(int(serr[th].sum()), count), "srv_serror_rate": rate(int(serr[tsv].sum()), srv_count),
            "rerror_rate": rate(int(rerr[th].sum()), count), "srv_rerror_rate": rate(int(rerr[tsv].sum()), srv_count),
            "same_srv_rate": rate(same, count), "diff_srv_rate": diff, "srv_diff_host_rate": srv_diff_host,
        }
        # host window: the last N records before this one
        w = np.arange(max(0, i - n_host), i)
        eh = w[host[w] == host[i]]
        es = w[service[w] == service[i]]
        dhc, dhsc = len(eh), len(es)
        # the rate sets: this record in place of the oldest (with_current), or the earlier ones
        fh = np.concatenate([eh[1:], [i]]) if with_current and dhc else eh
        fs = np.concatenate([es[1:], [i]]) if with_current and dhsc else es
        same_h = int((service[fh] == service[i]).sum())
        if distinct:
            d = len(set(service[fh].tolist()))
            dh_diff = rate(d, dhc) if d > 1 else 0.0
            dh = len(set(host[fs].tolist()))
            dh_srv_diff = rate(dh, dhsc) if dh > 1 else 0.0
        else:
            dh_diff = rate(dhc - same_h, dhc)
            dh_srv_diff = rate(dhsc - int((host[fs] == host[i]).sum()), dhsc)
        f.update({
            "dst_host_count": min(dhc, cfg.host_count_cap), "dst_host_srv_count": min(dhsc, cfg.host_count_cap),
            "dst_host_same_srv_rate": rate(same_h, dhc), "dst_host_diff_srv_rate": dh_diff,
            "dst_host_same_src_port_rate": rate(int((sport[fh] == sport[i]).sum()), dhc),
            "dst_host_srv_diff_host_rate": dh_srv_diff,
            "dst_host_serror_rate": rate(int(serr[fh].sum()), dhc),
            "dst_host_srv_serror_rate": rate(int(serr[fs].sum()), dhsc),
            "dst_host_rerror_rate": rate(int(rerr[fh].sum()), dhc),
            "dst_host_srv_rerror_rate": rate(int(rerr[fs].sum()), dhsc),
        })
        out.append(f)
    return out
