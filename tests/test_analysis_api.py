"""The data-collection API checks what post-call analysis will store: known prospect columns, the `date` type."""
from __future__ import annotations

from test_api_fixtures import Api, api, settings  # noqa: F401  (fixtures)


async def test_store_to_prospect_names_a_known_column(api: Api) -> None:
    agent_id = await api.agent()
    path = f"/assistant/{agent_id}/data-collection"
    message = await api.error("POST", path, 422, "VALIDATION_ERROR", json={
        "key": "mood", "prompt": "Mood", "store_to_prospect": True, "prospect_column_name": "shoe_size"})
    assert "shoe_size" in message and "email_id" in message
    created = await api.ok("POST", path, json={"key": "mail", "prompt": "Email", "store_to_prospect": True,
                                               "prospect_column_name": "email_id"})
    when = await api.ok("POST", path, json={"key": "callback", "prompt": "Callback day", "data_type": "date"})
    assert when["data_type"] == "date"
    # a placeholder column is harmless while store_to_prospect is off (the seed's own example sends one)
    await api.ok("POST", path, json={"key": "demo", "prompt": "Demo?", "store_to_prospect": False,
                                     "prospect_column_name": "<prospect_column_name>"})
    await api.error("PATCH", f"/assistant/data-collection/{created['id']}", 422, "VALIDATION_ERROR",
                    json={"prospect_column_name": "id"})
    await api.ok("PATCH", f"/assistant/data-collection/{created['id']}", json={"prospect_column_name": "remarks"})
