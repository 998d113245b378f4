"""Property tests of `dlrhub.providers.nrs360.answers`: events or `NormalizeError`, always."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from dlrhub.event import RawCallback
from dlrhub.normalizers.base import SourceOptions
from tests.normalizer_strategies import (
    any_text,
    bodies,
    check_events_or_error,
    json_documents,
    options,
    queries,
    raw_callbacks,
)

KEYS = [
    "result",
    "accepted",
    "to",
    "id",
    "error",
    "code",
    "description",
    "data",
    "events",
    "type",
    "date",
    "sendingId",
    "parts",
    "isDelivered",
    "from",
    "dlrhubRefs",
]
COLUMNS = ["event", "phone", "createdAt", "campaignId", "sendingId", "contactId"]

csv_bodies = st.lists(
    st.lists(
        st.sampled_from(["delivered", "sent", "2024-12-02 10:15:00", "", ",", '"']) | any_text,
        max_size=5,
    ),
    max_size=4,
).map(
    lambda rows: "\n".join(
        [",".join(COLUMNS[:4])] + [",".join(cell for cell in row) for row in rows]
    ).encode("utf-8", "surrogatepass")
)
request_queries = json_documents(KEYS).map(lambda value: orjson.dumps(value).decode())


@settings(max_examples=400, deadline=None)
@given(
    raw=raw_callbacks(
        "nrs360",
        ["send", "poll", "report"],
        st.one_of(request_queries, queries(["dlrhub_message_id", "dlrhub_channel", "sendingId"])),
        st.one_of(bodies(KEYS), csv_bodies),
    ),
    given_options=options,
)
def test_any_answer_gives_events_or_a_normalize_error(
    raw: RawCallback, given_options: SourceOptions
) -> None:
    check_events_or_error("nrs360", raw, given_options)
