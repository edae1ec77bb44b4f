"""The remote-function path in-process, on generated bodies: every answer is per protocol.

Whatever BigQuery (or anyone) sends with ``calls``, the answer is 200 with one reply per
call, or an ``errorMessage`` with a status BigQuery does not retry: never a 500, which it
would retry forever on the same bad batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[3]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
feature = st.sampled_from(["area", "Neighborhood", "Overall.Qual", "MS.SubClass", "PID", "x"])
rows = st.one_of(
    st.dictionaries(feature, scalars, max_size=6),
    scalars,
    st.lists(scalars, max_size=3),
)
calls = st.lists(
    st.one_of(st.lists(rows, min_size=1, max_size=1), rows, st.lists(rows)), max_size=8
)
contexts = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from(["model_version", "k"]), st.one_of(st.text(max_size=8), scalars)
    ),
    scalars,
)


@pytest.fixture(scope="module")
def api(ames_store: Path) -> Any:
    import estate.serving.versions as versions
    from estate.serving.settings import get_settings

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ESTATE_ARTIFACTS", str(ames_store))
        mp.setenv("ESTATE_MODEL_NAME", "ames")
        get_settings.cache_clear()
        versions._holder = None
        from functions_framework import create_app

        client: FlaskClient = create_app(
            target="predict", source=str(REPO / "main.py")
        ).test_client()
        yield client
        get_settings.cache_clear()
        versions._holder = None


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(calls=calls, context=contexts, request_id=st.one_of(st.none(), st.text(max_size=8), scalars))
def test_any_calls_body_answers_per_protocol(
    api: FlaskClient, calls: list[Any], context: Any, request_id: Any
) -> None:
    body = {"requestId": request_id, "userDefinedContext": context, "calls": calls}
    answer = api.post("/", json=body)
    payload = answer.get_json()
    assert answer.status_code in {200, 400, 404, 413}, answer.get_data(as_text=True)[:300]
    if answer.status_code == 200:
        assert len(payload["replies"]) == len(calls)
        for reply in payload["replies"]:
            assert ("error" in reply) != ("price" in reply), reply
    else:
        assert set(payload) == {"errorMessage"}
        assert payload["errorMessage"]
