"""Hypothesis strategies for bad task messages, as raw kombu envelopes (bytes).

A case is what a broken or hostile producer could put on a queue: garbage bytes, a
truncated envelope, wrong types in any header, bad eta/expires strings, bodies that are
truncated JSON, the wrong shape, huge, pickled or of an unknown content type, unknown
task names, wrong arity, garbage canvas fields. Each case that still parses carries its
own ``id`` so the test can tell executed from dead-lettered.
"""

from __future__ import annotations

import base64
import datetime as dt
import pickle
from typing import Any

import orjson
from hypothesis import strategies as st

#: tasks the fuzz app registers; everything else is an unknown task
KNOWN = ["fz.one", "fz.two", "fz.aone", "fz.var"]

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1),
                         st.floats(allow_nan=False, allow_infinity=False),
                         st.text(max_size=12))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8)
any_header = st.one_of(json_values, st.lists(st.integers(-2**63, 2**63 - 1), max_size=3))

_past = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
_soon = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
bad_dates = st.sampled_from(["tomorrow", "2024-13-45T99:00:00", "", "Z", "0000-00-00",
                             "2024-01-01T00:00:00+99:00", "9999-12-31T23:59:59.999999-23:59",
                             _past, 12345, 1.5, [], {}, True])

task_names = st.one_of(st.sampled_from(KNOWN), st.sampled_from(["no.such", "", "fz"]),
                       any_header)
header_overrides = st.fixed_dictionaries({}, optional={
    "task": task_names,
    "retries": any_header,
    "timelimit": st.one_of(any_header, st.lists(any_header, max_size=3)),
    "eta": st.one_of(bad_dates, any_header),
    "expires": st.one_of(bad_dates, st.just(_soon), any_header),
    "root_id": any_header, "parent_id": any_header, "group": any_header,
    "group_index": any_header, "ignore_result": any_header, "shadow": any_header,
    "compression": st.sampled_from(["zlib", "gzip", 7]),
    "argsrepr": any_header, "origin": any_header, "stamps": any_header,
})
embeds = st.one_of(st.none(), json_values, st.fixed_dictionaries({}, optional={
    "callbacks": json_values, "errbacks": json_values, "chain": json_values,
    "chord": json_values}))


@st.composite
def bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    """(content type, body bytes)."""
    args = draw(st.lists(json_values, max_size=4))
    kwargs = draw(st.dictionaries(st.sampled_from(["x", "a", "b", "zz", "self"]),
                                  json_values, max_size=2))
    shape = draw(st.sampled_from(["good", "good", "good", "two", "object", "scalar",
                                  "truncated", "notutf8", "huge", "pickle", "args-not-list",
                                  "kwargs-not-dict"]))
    embed = draw(embeds)
    doc: Any = [args, kwargs, embed]
    if shape == "two":
        doc = [args, kwargs]
    elif shape == "object":
        doc = {"args": args}
    elif shape == "scalar":
        doc = draw(json_scalars)
    elif shape == "huge":
        doc = [["x" * 2_000_000], {}, None]
    elif shape == "args-not-list":
        doc = [draw(json_scalars), kwargs, embed]
    elif shape == "kwargs-not-dict":
        doc = [args, draw(st.lists(json_scalars, max_size=2)), embed]
    raw = orjson.dumps(doc)
    if shape == "truncated":
        raw = raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    elif shape == "notutf8":
        raw = b"\xff\xfe" + raw
    elif shape == "pickle":
        return "application/x-python-serialize", pickle.dumps([args, kwargs, None])
    ctype = draw(st.sampled_from(["application/json"] * 6 + [
        "application/x-yaml", "text/plain", "", "application/x-msgpack"]))
    return ctype, raw


@st.composite
def envelopes(draw: st.DrawFn, queue: str, case_id: str) -> bytes:
    """One raw envelope; most are well-formed around a bad body or bad headers."""
    kind = draw(st.sampled_from(["message"] * 8 + ["garbage", "truncated", "wrong-shape",
                                                   "bad-base64"]))
    if kind == "garbage":
        return draw(st.binary(max_size=64))
    headers: dict[str, Any] = {"lang": "py", "task": draw(st.sampled_from(KNOWN)),
                               "id": case_id, "retries": 0, "timelimit": [None, None],
                               "eta": None, "expires": None, "root_id": case_id}
    headers.update(draw(header_overrides))
    if draw(st.booleans()) and len(headers) > 3:
        headers.pop(draw(st.sampled_from(sorted(k for k in headers if k != "id"))))
    ctype, body = draw(bodies())
    envelope: dict[str, Any] = {
        "body": base64.b64encode(body).decode(), "content-encoding": "utf-8",
        "content-type": ctype, "headers": headers,
        "properties": {"correlation_id": case_id, "body_encoding": "base64",
                       "delivery_info": {"exchange": "", "routing_key": queue},
                       "delivery_tag": case_id, "priority": draw(any_header)}}
    if kind == "wrong-shape":
        envelope[draw(st.sampled_from(["headers", "properties"]))] = draw(json_scalars) or 1
    elif kind == "bad-base64":
        envelope["body"] = "%%%not base64%%%"
    raw = orjson.dumps(envelope)
    if kind == "truncated":
        raw = raw[: draw(st.integers(1, len(raw) - 1))]
    return raw
